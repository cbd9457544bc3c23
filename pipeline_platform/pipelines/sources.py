"""Chunked readers of SQL data sources: one interface, a PostgreSQL and a SQLAlchemy backend.

:func:`open_reader` picks the backend from the URL (the only place that tells them apart).
PostgreSQL streams ``COPY (SELECT …) TO STDOUT (FORMAT csv)`` through pyarrow's streaming CSV
reader, typed from the result's column types, so no Python code runs per row; other databases
use a server-side / streaming cursor with ``fetchmany``-sized partitions.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline_platform.names import require_sql_identifier
from pipeline_platform.pipelines.conditions import condition_sql

Chunk: TypeAlias = pd.DataFrame | pa.Table

# PostgreSQL type OID → Arrow type for the CSV reader (others are read as text).
_PG_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(),
    701: pa.float64(), 1700: pa.float64(), 1082: pa.date32(), 1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}  # fmt: skip
_PANDAS_TYPES: dict[pa.DataType, Any] = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_pandas(chunk: Chunk) -> pd.DataFrame:
    """Return a chunk as pandas (Arrow tables converted with :func:`arrow_to_pandas`)."""
    return arrow_to_pandas(chunk) if isinstance(chunk, pa.Table) else chunk


def head(chunk: Chunk, rows: int) -> Chunk:
    """Return the first ``rows`` rows of a chunk."""
    return chunk.slice(0, rows) if isinstance(chunk, pa.Table) else chunk.iloc[:rows]


def arrow_to_pandas(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Convert Arrow data to a chunk: integers and booleans with NULLs stay nullable types.

    Columns without NULLs convert to plain numpy types (fast); integer and boolean columns with
    NULLs become pandas' nullable ``Int64`` / ``boolean`` (never floats or objects).
    """
    frame = table.to_pandas()
    for index, field_ in enumerate(table.schema):
        column = table.column(index)
        if column.null_count and field_.type in _PANDAS_TYPES:
            frame[field_.name] = column.to_pandas(types_mapper=_PANDAS_TYPES.get)
    return frame


@dataclass(frozen=True)
class Query:
    """A SELECT on one table, built from validated names and structured conditions.

    Attributes:
        schema: Schema name, or None for the default.
        table: Table name.
        columns: Columns to read (None = all).
        where: Structured filter conditions pushed down (see ``conditions``), or None.
        after: ``(cursor column, key columns, values)`` to read past a watermark, or None.
        order_by: Columns to order by (the incremental cursor and key).
    """

    schema: str | None
    table: str
    columns: tuple[str, ...] | None = None
    where: Mapping[str, Any] | None = None
    after: tuple[str, tuple[str, ...], tuple[Any, ...]] | None = None
    order_by: tuple[str, ...] = ()
    limit: int | None = None


class Reader(Protocol):
    """Reads one data source in chunks."""

    dialect: str

    def select(self, query: Query, chunk_size: int) -> Iterator[Chunk]:
        """Yield the rows of a structured query in chunks (pandas or Arrow)."""
        ...

    def run_query(
        self, sql: str, parameters: Mapping[str, Any], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows of a user's read-only SELECT, parameters bound, in chunks."""
        ...

    def exists_after(self, query: Query) -> bool:
        """Return True when the query has at least one row (the realtime sensor's probe)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _render(query: Query, quote: Any, literal: Any, dialect: str) -> str:
    names = ", ".join(quote(c) for c in query.columns) if query.columns else "*"
    table = (
        quote(query.table)
        if query.schema is None
        else f"{quote(query.schema)}.{quote(query.table)}"
    )
    clauses: list[str] = []
    if query.where is not None:
        rendered = condition_sql(query.where, quote, literal, dialect)
        if rendered is None:
            raise ValueError("condition cannot be pushed down")
        clauses.append(rendered)
    if query.after is not None:
        cursor, key, values = query.after
        names_after = ", ".join(quote(c) for c in (cursor, *key))
        values_sql = ", ".join(literal(v) for v in values)
        clauses.append(f"({names_after}) > ({values_sql})")
    sql = f"SELECT {names} FROM {table}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if query.order_by:
        sql += " ORDER BY " + ", ".join(quote(c) for c in query.order_by)
    if query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    return sql


def _quote(name: str) -> str:
    return f'"{require_sql_identifier(name)}"'


@dataclass
class PostgresReader:
    """PostgreSQL through psycopg: COPY TO STDOUT parsed by pyarrow, literals by the driver."""

    conninfo: str
    dialect: str = "postgresql"
    _conn: Any = field(default=None, repr=False)

    def _connection(self) -> Any:
        if self._conn is None:
            import psycopg

            self._conn = psycopg.connect(self.conninfo, autocommit=False)
            self._conn.execute("SET TIME ZONE 'UTC'")
            self._conn.execute("SET TRANSACTION READ ONLY")
        return self._conn

    def _literal(self, value: Any) -> str:
        from psycopg import sql

        return sql.Literal(value).as_string(self._connection())

    def _sql(self, query: Query) -> str:
        return _render(query, _quote, self._literal, self.dialect)

    def select(self, query: Query, chunk_size: int) -> Iterator[Chunk]:
        conn = self._connection()
        statement = self._sql(query)
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({statement}) AS q LIMIT 0")
            names = [d.name for d in cursor.description]
            types = {d.name: _PG_ARROW.get(d.type_code, pa.string()) for d in cursor.description}
        yield from self._copy(statement, names, types, chunk_size)

    def describe(self, query: Query) -> pa.Schema:
        """Return the Arrow schema of a query's result (from the server's column types)."""
        with self._connection().cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({self._sql(query)}) AS q LIMIT 0")
            return pa.schema(
                [(d.name, _PG_ARROW.get(d.type_code, pa.string())) for d in cursor.description]
            )

    def copy_csv(self, query: Query) -> Iterator[bytes]:
        """Yield a query's rows as raw CSV blocks (``COPY (SELECT …) TO STDOUT``), unparsed."""
        conn = self._connection()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY ({self._sql(query)}) TO STDOUT (FORMAT csv)") as copy,
        ):
            yield from copy
        conn.rollback()

    def _copy(
        self, statement: str, names: list[str], types: dict[str, pa.DataType], chunk_size: int
    ) -> Iterator[Chunk]:
        conn = self._connection()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)") as copy,
        ):
            stream = _CopyStream(copy)
            reader: Any = ()
            if not stream.peek():
                yield pa.schema(list(types.items())).empty_table()
            else:
                block = min(16 << 20, max(64 << 10, chunk_size * 128))
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(column_names=names, block_size=block),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types=types,
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                        true_values=["t"],
                        false_values=["f"],
                    ),
                )
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= chunk_size:
                    yield pa.Table.from_batches(pending)
                    pending, rows = [], 0
            if pending:
                yield pa.Table.from_batches(pending)
        conn.rollback()

    def run_query(
        self, sql: str, parameters: Mapping[str, Any], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        yield from _sqlalchemy_query(_sqlalchemy_url(self.conninfo), sql, parameters, chunk_size)

    def exists_after(self, query: Query) -> bool:
        conn = self._connection()
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM ({self._sql(query)}) AS q LIMIT 1")
            found = cursor.fetchone() is not None
        conn.rollback()
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _CopyStream(io.RawIOBase):
    """A readable byte stream over psycopg's ``Copy`` iterator (for pyarrow's CSV reader)."""

    def __init__(self, copy: Any) -> None:
        self._blocks = iter(copy)
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def peek(self) -> bool:
        """Return True when the stream has at least one more byte."""
        while not len(self._buffer):
            block = next(self._blocks, None)
            if block is None:
                return False
            self._buffer = memoryview(block)
        return True

    def readinto(self, target: Any) -> int:
        if not self.peek():
            return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes, gathering whole COPY blocks (fewer, larger reads)."""
        if size is None or size < 0:
            return b"".join([bytes(self._buffer), *(bytes(b) for b in self._blocks)])
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and self.peek():
            piece = self._buffer[:wanted]
            parts.append(bytes(piece))
            wanted -= len(piece)
            self._buffer = self._buffer[len(piece) :]
        return b"".join(parts)


def _sqlalchemy_url(conninfo: str) -> str:
    return conninfo.replace("postgresql://", "postgresql+psycopg://", 1)


def _sqlalchemy_query(
    url: str, sql: str, parameters: Mapping[str, Any], chunk_size: int
) -> Iterator[pd.DataFrame]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA query_only = ON")
            result = connection.execution_options(stream_results=True).execute(
                text(sql), dict(parameters)
            )
            columns = list(result.keys())
            for rows in result.partitions(chunk_size):
                frame = pd.DataFrame.from_records(rows, columns=columns)
                yield frame.convert_dtypes(dtype_backend="numpy_nullable")
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA query_only = OFF")
            connection.rollback()
    finally:
        engine.dispose()


@dataclass
class SqlAlchemyReader:
    """Any other SQLAlchemy database (SQLite): streaming cursor, bound parameters."""

    url: str
    dialect: str = "sqlite"

    def _sql(self, query: Query) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}

        def bind(value: Any) -> str:
            name = f"p{len(params)}"
            params[name] = value
            return f":{name}"

        return _render(query, _quote, bind, self.dialect), params

    def select(self, query: Query, chunk_size: int) -> Iterator[pd.DataFrame]:
        sql, params = self._sql(query)
        yield from _sqlalchemy_query(self.url, sql, params, chunk_size)

    def run_query(
        self, sql: str, parameters: Mapping[str, Any], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        yield from _sqlalchemy_query(self.url, sql, parameters, chunk_size)

    def exists_after(self, query: Query) -> bool:
        sql, params = self._sql(query)
        for frame in _sqlalchemy_query(self.url, f"SELECT 1 FROM ({sql}) AS q LIMIT 1", params, 1):
            return len(frame) > 0
        return False

    def close(self) -> None:
        return None


def open_reader(url: str) -> PostgresReader | SqlAlchemyReader:
    """Return the reader of a data source URL (PostgreSQL: COPY; others: streaming cursor)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresReader(conninfo)
    return SqlAlchemyReader(url, dialect=parsed.get_backend_name())


def frames_to_arrow(frames: Sequence[pd.DataFrame]) -> pa.Table:
    """Concatenate chunks into one Arrow table (for file loaders and tests)."""
    return pa.concat_tables([pa.Table.from_pandas(f, preserve_index=False) for f in frames])
