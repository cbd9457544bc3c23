"""Extractor nodes: chunk iterators over SQL tables and queries, CSV and Parquet files.

Each extractor yields at least one chunk (an empty one with the column names when there are no
rows), so loaders can create their tables and blocking steps know the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline_platform.pipelines.sources import Chunk, Query, head, open_reader
from pipeline_platform.pipelines.watermark import last_position

DEFAULT_CHUNK_SIZE = 100_000


@dataclass
class Pushdown:
    """What the planner moved into a SQL extractor's query.

    Attributes:
        where: Filter conditions (an exact SQL rendering exists), or None.
        columns: Columns to read (a downstream select), or None for the configured ones.
        filter_node: The filter node whose work the query now does.
    """

    where: Mapping[str, Any] | None = None
    columns: tuple[str, ...] | None = None
    filter_node: str | None = None


@dataclass
class Extract:
    """One extractor node ready to run.

    Attributes:
        module: Module name.
        config: Effective config.
        url: Data source URL (SQL modules), never logged.
        pushdown: Work pushed into the source query.
        watermark: Position to read past (incremental), or None.
        limit: Read at most this many rows (preview), or None.
    """

    module: str
    config: Mapping[str, Any]
    url: str | None = None
    pushdown: Pushdown = field(default_factory=Pushdown)
    watermark: list[Any] | None = None
    limit: int | None = None
    watermark_after: list[Any] | None = None

    @property
    def chunk_size(self) -> int:
        size = int(self.config.get("chunk_size", DEFAULT_CHUNK_SIZE))
        return min(size, self.limit) if self.limit else size

    def query(self) -> Query:
        """Return the structured query of a SQL table extractor (watermark and push-down)."""
        config = self.config
        cursor = config.get("incremental_column")
        key = tuple(config.get("key", ()))
        columns = self.pushdown.columns or (
            tuple(config["columns"]) if config.get("columns") else None
        )
        if columns is not None and cursor:
            columns = tuple(dict.fromkeys((*columns, cursor, *key)))
        return Query(
            schema=config.get("schema"),
            table=config["table"],
            columns=columns,
            where=self.pushdown.where,
            after=(cursor, key, tuple(self.watermark)) if cursor and self.watermark else None,
            order_by=(cursor, *key) if cursor else (),
            limit=self.limit,
        )

    def chunks(self) -> Iterator[Chunk]:
        """Yield the extractor's rows in chunks (at least one, possibly empty)."""
        produced = False
        for frame in self._frames():
            produced = True
            yield frame
        if not produced:
            yield pd.DataFrame(columns=list(self.config.get("columns") or ()))

    def _frames(self) -> Iterator[Chunk]:
        if self.module == "sql_table_extractor":
            yield from self._sql_table()
        elif self.module == "sql_query_extractor":
            reader = open_reader(str(self.url))
            try:
                sql = str(self.config["query"])
                if self.limit:
                    sql = f"SELECT * FROM ({sql}) AS q LIMIT {int(self.limit)}"
                yield from reader.run_query(
                    sql, self.config.get("parameters") or {}, self.chunk_size
                )
            finally:
                reader.close()
        elif self.module == "csv_extractor":
            yield from self._csv()
        elif self.module == "parquet_extractor":
            yield from self._parquet()
        else:
            raise ValueError(f"unknown extractor {self.module!r}")

    def _sql_table(self) -> Iterator[Chunk]:
        reader = open_reader(str(self.url))
        cursor = self.config.get("incremental_column")
        key = tuple(self.config.get("key", ()))
        try:
            for frame in reader.select(self.query(), self.chunk_size):
                if cursor:
                    self.watermark_after = last_position(frame, cursor, key) or self.watermark_after
                yield frame
        finally:
            reader.close()

    def _csv(self) -> Iterator[Chunk]:
        columns = self.config.get("columns")
        reader = pacsv.open_csv(
            str(self.config["path"]),
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=self.config.get("delimiter", ","), newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns) if columns else None,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from self._limited(pa.Table.from_batches([batch]) for batch in reader)

    def _parquet(self) -> Iterator[Chunk]:
        columns = self.config.get("columns")
        file = pq.ParquetFile(str(self.config["path"]))
        batches = file.iter_batches(
            batch_size=self.chunk_size, columns=list(columns) if columns else None
        )
        yield from self._limited(pa.Table.from_batches([batch]) for batch in batches)

    def _limited(self, frames: Iterator[Chunk]) -> Iterator[Chunk]:
        left = self.limit
        for frame in frames:
            if left is not None:
                frame = head(frame, left)
                left -= len(frame)
            yield frame
            if left is not None and left <= 0:
                return
