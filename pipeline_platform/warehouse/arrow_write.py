"""Whole-chunk writes of Arrow tables (table pipelines), beside the row writes of ingestion.

PostgreSQL: the chunk is rendered as CSV by pyarrow (C++, no Python per row) and sent with one
``COPY ... FROM STDIN (FORMAT csv)`` into the table, or, for keyed upserts, into the
connection's TEMP staging table followed by one ``INSERT ... SELECT ... ON CONFLICT``. SQLite:
the columns are converted by Arrow and written with the transaction's ``write_rows``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline_platform.warehouse.base import TargetTable, WriteMode
from pipeline_platform.warehouse.quoting import quote

#: Rows rendered per CSV slice (sent while the next one is rendered).
SLICE_ROWS = 16_384

if TYPE_CHECKING:
    from pipeline_platform.warehouse.postgres_write import PostgresTransaction
    from pipeline_platform.warehouse.sqlite import SqliteTransaction


def _check_columns(target: TargetTable, table: pa.Table) -> None:
    unknown = [name for name in table.column_names if name not in target.columns]
    if unknown:
        raise ValueError(f"{target.qualified} has no column {unknown[0]!r}")


def postgres_write_arrow(
    tx: PostgresTransaction, target: TargetTable, table: pa.Table, mode: WriteMode | None
) -> int:
    """COPY an Arrow table into ``target`` (staging + ON CONFLICT when upserting by key)."""
    from pipeline_platform.warehouse.postgres_write import upsert_sql

    if table.num_rows == 0:
        return 0
    _check_columns(target, table)
    names = ", ".join(quote(c) for c in table.column_names)
    upsert = bool(target.conflict_columns) and mode != "append"
    into = target.qualified
    if upsert:
        into = tx.warehouse.staging_table(target)
        if into in tx._dirty:
            tx.cursor.execute(f"TRUNCATE {into}")
    sql = f"COPY {into} ({names}) FROM STDIN (FORMAT csv)"
    options = pacsv.WriteOptions(include_header=False)
    # Each slice is sent while the server parses the previous one.
    with tx.conn.cursor() as cursor, cursor.copy(sql) as copy:
        for start in range(0, table.num_rows, SLICE_ROWS):
            buffer = io.BytesIO()
            pacsv.write_csv(table.slice(start, SLICE_ROWS), buffer, options)
            copy.write(buffer.getvalue())
    if upsert:
        tx.cursor.execute(upsert_sql(target, into, upsert=True))
        tx._dirty.add(into)
    return int(table.num_rows)


def sqlite_write_arrow(
    tx: SqliteTransaction, target: TargetTable, table: pa.Table, mode: WriteMode | None
) -> int:
    """Write an Arrow table through the SQLite transaction's ``write_rows``."""
    if table.num_rows == 0:
        return 0
    _check_columns(target, table)
    missing: list[Any] = [None] * table.num_rows
    columns = [
        table.column(name).to_pylist() if name in table.column_names else missing
        for name in target.columns
    ]
    tx.write_rows(target, list(zip(*columns, strict=True)), mode=mode)
    return int(table.num_rows)


def postgres_copy_csv(
    tx: PostgresTransaction, target: TargetTable, columns: Sequence[str], blocks: Iterable[bytes]
) -> int:
    """Stream CSV blocks (PostgreSQL's own CSV, as ``COPY TO`` writes it) into ``target``."""
    unknown = [name for name in columns if name not in target.columns]
    if unknown:
        raise ValueError(f"{target.qualified} has no column {unknown[0]!r}")
    names = ", ".join(quote(c) for c in columns)
    with tx.conn.cursor() as cursor:
        # Blocks are small (one per source COPY message): written inline, no writer thread.
        with cursor.copy(f"COPY {target.qualified} ({names}) FROM STDIN (FORMAT csv)") as copy:
            for block in blocks:
                copy.write(block)
        return int(cursor.rowcount)
