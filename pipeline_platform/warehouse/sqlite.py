"""The SQLite backend (the embedded default): the standard library's sqlite3, one writer.

SQLite columns are dynamically typed: a value is stored as the logical type renders it (see
:func:`sqlite_value_converters`) whatever the declared column type, so there is no type to
migrate and :meth:`SqliteWarehouse.type_changes` reports nothing. ``db_schema`` is ignored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_platform.names import require_sql_identifier
from pipeline_platform.warehouse.base import (
    DEAD_LETTERS_TABLE,
    OFFSETS_TABLE,
    STATE_TABLE,
    MigrationStep,
    TableSpec,
    TargetTable,
    TypeChange,
    WriteMode,
    conflict_columns_for,
)
from pipeline_platform.warehouse.common import (
    CommonReads,
    CommonTransaction,
    backfill_reason_kinds,
    conflict_clause,
)
from pipeline_platform.warehouse.quoting import quote
from pipeline_platform.warehouse.rejects import RejectedRow, bisect_rejects

SQLITE_TYPES = {
    "string": "TEXT",
    "integer": "INTEGER",
    "float": "REAL",
    "boolean": "INTEGER",
    "timestamp": "TEXT",
    "date": "TEXT",
    "json": "TEXT",
    "uuid": "TEXT",
}


def sqlite_value_converters(types: Sequence[str]) -> list[Any]:
    """Return per-column converters from logical Python values to SQLite storage values."""

    def timestamp(value: Any) -> Any:
        return None if value is None else value.astimezone(UTC).isoformat()

    def isoformat(value: Any) -> Any:
        return None if value is None else value.isoformat()

    def text(value: Any) -> Any:
        return None if value is None else str(value)

    def boolean(value: Any) -> Any:
        return None if value is None else int(value)

    table = {"timestamp": timestamp, "date": isoformat, "uuid": text, "boolean": boolean}
    return [table.get(t) for t in types]


class SqliteTransaction(CommonTransaction):
    """An open ``BEGIN IMMEDIATE`` transaction of a :class:`SqliteWarehouse`."""

    mark = "?"

    def __init__(self, conn: sqlite3.Connection) -> None:
        """Wrap the connection."""
        self.conn = conn
        self._savepoints = 0

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params)

    def _executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, params)

    def write_rows(
        self,
        target: TargetTable,
        rows: Sequence[tuple[Any, ...]],
        *,
        mode: WriteMode | None = None,
        isolate_rejects: bool = False,
    ) -> list[RejectedRow]:
        """Insert (or, by key, update) rows with one ``executemany``; see the interface."""
        if not rows:
            return []
        converters = sqlite_value_converters(target.types)
        if any(converters):
            pairs = list(enumerate(converters))
            rows = [tuple(conv(row[i]) if conv else row[i] for i, conv in pairs) for row in rows]
        cols = ", ".join(quote(c) for c in target.columns)
        marks = ", ".join("?" for _ in target.columns)
        sql = f"INSERT INTO {target.qualified} ({cols}) VALUES ({marks})"
        if mode != "append":
            sql += conflict_clause(target)
        if not isolate_rejects:
            self.conn.executemany(sql, rows)
            return []

        def attempt(indexes: Sequence[int]) -> str | None:
            name = f"pp_rows_{self._savepoints}"
            self._savepoints += 1
            self.conn.execute(f"SAVEPOINT {name}")
            try:
                self.conn.executemany(sql, [rows[i] for i in indexes])
            except (sqlite3.IntegrityError, sqlite3.DataError) as error:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                return f"database: {error}"
            self.conn.execute(f"RELEASE {name}")
            return None

        everything = range(len(rows))
        refused = attempt(everything)
        if refused is None:
            return []
        return sorted(bisect_rejects(everything, attempt, refused), key=lambda r: r.index)

    def write_arrow(self, target: TargetTable, table: Any, *, mode: WriteMode | None = None) -> int:
        """Write a whole Arrow chunk through :meth:`write_rows`; see the interface."""
        from pipeline_platform.warehouse.arrow_write import sqlite_write_arrow

        return sqlite_write_arrow(self, target, table, mode)

    def copy_csv(self, target: TargetTable, columns: Sequence[str], blocks: Any) -> int:
        """Not offered by SQLite: callers check ``Warehouse.backend`` first."""
        raise NotImplementedError("copy_csv needs a PostgreSQL warehouse")


class SqliteWarehouse(CommonReads):
    """A stdlib sqlite3 connection to a SQLite warehouse (explicit BEGIN IMMEDIATE transactions)."""

    backend = "sqlite"
    mark = "?"
    parallel_writers = False

    def _timestamp_param(self, value: datetime) -> str:
        """SQLite stores ``CURRENT_TIMESTAMP`` as ``YYYY-MM-DD HH:MM:SS`` UTC text."""
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def __init__(self, path: str, read_only: bool = False, timeout: float = 30.0) -> None:
        """Open (and create) the database file.

        Args:
            path: Database file path, or ``:memory:``.
            read_only: Open read only, never creating the file (a missing file reads as an
                empty database).
            timeout: Seconds to wait for a lock.
        """
        if read_only:
            exists = path != ":memory:" and Path(path).exists()
            target = f"{Path(path).absolute().as_uri()}?mode=ro" if exists else ":memory:"
            self.conn = sqlite3.connect(
                target, uri=exists, isolation_level=None, timeout=timeout, check_same_thread=False
            )
            return
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            path, isolation_level=None, timeout=timeout, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def ensure_state_tables(self) -> None:
        """Create the offsets, dead-letter and state tables; add ``reason_kind`` to old ones."""
        with self.transaction():
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (
                    asset_key TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    run_id TEXT,
                    PRIMARY KEY (asset_key, topic, partition))"""
            )
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {DEAD_LETTERS_TABLE} (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    asset_key TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    "offset" INTEGER NOT NULL,
                    key BLOB,
                    raw BLOB,
                    reason TEXT NOT NULL,
                    run_id TEXT,
                    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    reason_kind TEXT,
                    UNIQUE (asset_key, topic, partition, "offset"))"""
            )
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
                    scope TEXT NOT NULL,
                    name TEXT NOT NULL,
                    value TEXT NOT NULL,
                    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    run_id TEXT,
                    PRIMARY KEY (scope, name))"""
            )
            columns = {
                row[1] for row in self.conn.execute(f"PRAGMA table_info({DEAD_LETTERS_TABLE})")
            }
            if "reason_kind" not in columns:
                self.conn.execute(f"ALTER TABLE {DEAD_LETTERS_TABLE} ADD COLUMN reason_kind TEXT")
            old = self.conn.execute(
                f"SELECT id, reason FROM {DEAD_LETTERS_TABLE} WHERE reason_kind IS NULL"
            ).fetchall()
            self.conn.executemany(
                f"UPDATE {DEAD_LETTERS_TABLE} SET reason_kind = ? WHERE id = ?",
                backfill_reason_kinds(old),
            )

    def type_changes(self, spec: TableSpec) -> list[TypeChange]:
        """Nothing: SQLite columns are dynamically typed."""
        return []

    def plan_migration(self, spec: TableSpec) -> list[MigrationStep]:
        """Nothing to migrate on SQLite."""
        return []

    def apply_migration(self, steps: Sequence[MigrationStep]) -> None:
        """Nothing to apply on SQLite."""

    def ensure_table(self, spec: TableSpec) -> TargetTable:
        """Create the target table when missing and add columns that the spec added."""
        qualified = quote(spec.name)
        columns = tuple(require_sql_identifier(c.name) for c in spec.columns)
        types = tuple(c.type for c in spec.columns)
        key = conflict_columns_for(spec.key, spec.time_column, hypertable=False)
        existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({qualified})")}
        if not existing:
            parts = [f"{quote(c.name)} {SQLITE_TYPES[c.type]}" for c in spec.columns]
            if key:
                parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in key)})")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(parts)})")
        else:
            for column in spec.columns:
                if column.name not in existing:
                    self.conn.execute(
                        f"ALTER TABLE {qualified} ADD COLUMN {quote(column.name)} "
                        f"{SQLITE_TYPES[column.type]}"
                    )
        return TargetTable(qualified, columns, types, key, False, (), spec.name, None)

    @contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        """Open the unit of work (``BEGIN IMMEDIATE``): committed on exit, else rolled back."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield SqliteTransaction(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def read_all_offsets(self, asset_keys: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """Return ``(asset_key, topic, partition, next_offset)`` of many assets, no DDL."""
        try:
            rows = self.conn.execute(
                "SELECT asset_key, topic, partition, next_offset FROM "
                f"{OFFSETS_TABLE} WHERE asset_key IN (SELECT value FROM json_each(?))",
                (json.dumps(list(asset_keys)),),
            ).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        return [(str(a), str(t), int(p), int(o)) for a, t, p, o in rows]
