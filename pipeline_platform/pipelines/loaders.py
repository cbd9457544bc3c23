"""Loader nodes: SQL tables (through a destination's one transaction), CSV and Parquet files.

A loader receives chunks during the run and makes them visible only in :meth:`commit`: SQL
loaders commit the destination transaction (rows, swaps and watermarks together); file loaders
write a temporary file next to the target and rename it over the target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline_platform.pipelines.destinations import (
    Destination,
    StateUpdates,
    Target,
    columns_of,
    to_arrow,
)
from pipeline_platform.pipelines.sources import to_pandas
from pipeline_platform.pipelines.transforms import Step


class SqlTableLoad(Step):
    """Write chunks into a SQL table; nothing is visible before :meth:`commit`."""

    arrow_ok = True

    def __init__(self, config: Mapping[str, Any], url: str, run_id: str) -> None:
        self.target = Target(
            schema=config.get("schema"),
            table=config["table"],
            mode=config.get("mode", "append"),
            key=tuple(config.get("key", ())),
        )
        self.destination = Destination(url, run_id)
        self.prepared = False
        self.written = 0

    def process(self, frame: Any, port: int = 0) -> pd.DataFrame | None:
        if self.target.mode == "upsert" and len(frame):
            # Rows unique by key within a write: the last row for a key wins.
            frame = to_pandas(frame).drop_duplicates(subset=list(self.target.key), keep="last")
        table = frame if isinstance(frame, pa.Table) else to_arrow(frame)
        if not self.prepared:
            self.destination.prepare(self.target, columns_of(table))
            self.prepared = True
        self.written += self.destination.write(self.target, table)
        return None

    def read_state(self, key: tuple[str, str]) -> str | None:
        """Return stored pipeline state from this loader's destination."""
        return self.destination.read_state(*key)

    def commit(self, state: StateUpdates) -> None:
        """Commit the rows, the swap or merge, and ``state`` in one transaction."""
        self.destination.commit([self.target] if self.prepared else [], state)

    def close(self) -> None:
        """Roll back what was not committed and close the connection."""
        self.destination.close()


class FileLoad(Step):
    """Write chunks into a temporary file, renamed over the target at commit."""

    arrow_ok = True

    def __init__(self, config: Mapping[str, Any], fmt: str, run_id: str) -> None:
        self.path = Path(str(config["path"]))
        self.format = fmt
        self.delimiter = config.get("delimiter", ",")
        self.temporary = self.path.with_name(f".{self.path.name}.{run_id[:12]}.tmp")
        self.writer: Any = None
        self.schema: pa.Schema | None = None
        self.written = 0

    def process(self, frame: Any, port: int = 0) -> pd.DataFrame | None:
        table = frame if isinstance(frame, pa.Table) else to_arrow(frame)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema = table.schema
            if self.format == "csv":
                options = pacsv.WriteOptions(delimiter=self.delimiter)
                self.writer = pacsv.CSVWriter(
                    str(self.temporary), table.schema, write_options=options
                )
            else:
                self.writer = pq.ParquetWriter(str(self.temporary), table.schema)
        elif self.schema is not None and table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self.writer.write_table(table)
        self.written += table.num_rows
        return None

    def read_state(self, key: tuple[str, str]) -> str | None:
        return None

    def commit(self, state: StateUpdates) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            os.replace(self.temporary, self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.temporary.unlink(missing_ok=True)


Loader = SqlTableLoad | FileLoad
