"""Row-level helpers shared by reading and writing the registry tables.

Key and JSON text as stored, and the bulk statements an import writes with: COPY on PostgreSQL
(values travel in the data stream, never in SQL text), executemany elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

_CHUNK = 500


def split_key(text: str | None) -> list[str]:
    """Parse a stored upsert key, ``"device_id, timestamp"``, into its column names."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def join_key(columns: Iterable[str]) -> str:
    """Store an upsert key as the comma-separated list SQL users write."""
    return ", ".join(columns)


def loads_json(text: str | None) -> Any:
    """Decode a stored JSON column (None stays None)."""
    return None if text is None else json.loads(text)


def dumps_json(value: Any) -> str:
    """Encode a value as the compact JSON text the registry stores."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def delete_in(
    connection: Connection,
    table: Table,
    column: str,
    ids: Sequence[Any],
    via: Callable[[Sequence[Any]], Any] | None = None,
) -> None:
    """Delete the rows of ``table`` whose ``column`` is in ``ids`` (or in ``via(ids)``)."""
    for chunk in _chunks(ids):
        target: Any = via(chunk) if via is not None else list(chunk)
        condition: ColumnElement[bool] = table.c[column].in_(target)
        connection.execute(delete(table).where(condition))


def update_rows(
    connection: Connection, table: Table, columns: Iterable[str], rows: list[dict[str, Any]]
) -> None:
    """Update rows by id: ``rows`` hold ``_id`` and every column in ``columns``."""
    if not rows:
        return
    statement = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(name) for name in columns})
    )
    connection.execute(statement, rows)


def _uses_copy(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _copy_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write rows with PostgreSQL ``COPY ... FROM STDIN`` in the connection's transaction.

    Values travel in the COPY data stream, never in SQL text; table and column names are the
    model's own, quoted as identifiers.
    """
    from psycopg import sql

    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    raw: Any = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows in bulk: COPY on PostgreSQL (psycopg), executemany elsewhere."""
    if not rows:
        return
    if _uses_copy(connection):
        _copy_rows(connection, table, rows)
    else:
        connection.execute(insert(table), rows)


def insert_returning_ids(
    connection: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert rows in bulk and return their new ids in the order of ``rows``."""
    if not rows:
        return []
    if _uses_copy(connection):
        # Take the ids from the table's sequence first, then COPY the rows with them.
        sequence = func.pg_get_serial_sequence(table.name, "id")
        series = func.generate_series(1, len(rows)).table_valued("n")
        ids = [
            int(value)
            for value in connection.execute(select(func.nextval(sequence)).select_from(series))
            .scalars()
            .all()
        ]
        _copy_rows(connection, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return ids
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(row[0]) for row in connection.execute(statement, rows)]
