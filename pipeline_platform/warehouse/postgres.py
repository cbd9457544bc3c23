"""The PostgreSQL/TimescaleDB backend: psycopg 3 directly (COPY, no ORM in the hot path)."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg.pq import TransactionStatus

from pipeline_platform.names import require_sql_identifier
from pipeline_platform.warehouse.base import (
    DEAD_LETTERS_TABLE,
    OFFSETS_TABLE,
    STATE_TABLE,
    ColumnTypeMismatch,
    MigrationStep,
    StoredDeadLetter,
    TableSpec,
    TargetTable,
    TypeChange,
    conflict_columns_for,
)
from pipeline_platform.warehouse.common import (
    backfill_reason_kinds,
    select_dead_letters_sql,
    stored_dead_letter,
)
from pipeline_platform.warehouse.postgres_write import Optimism, PostgresTransaction
from pipeline_platform.warehouse.quoting import qualified_name, quote

logger = logging.getLogger(__name__)

#: Column type per logical type, as ``format_type`` spells it.
POSTGRES_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamp with time zone",
    "date": "date",
    "json": "jsonb",
    "uuid": "uuid",
}
#: Live types that accept a logical type's canonical values by assignment cast (typmod removed).
COMPATIBLE_TYPES = {
    "string": {"character varying", "character", "text"},
    "integer": {"smallint", "integer", "numeric", "bigint"},
    "float": {"real", "numeric", "double precision"},
    "timestamp": {"timestamp without time zone", "timestamp with time zone"},
    "json": {"json"},
}
_TYPMOD = re.compile(r"\(\d+(,\d+)?\)")
_DDL_LOCK = 7_316_402_551  # pg_advisory_xact_lock key serializing DDL of concurrent runs


class PostgresWarehouse:
    """A psycopg 3 connection to a PostgreSQL/TimescaleDB warehouse (autocommit + explicit tx)."""

    backend = "postgresql"
    parallel_writers = True

    def __init__(self, conninfo: str, connect_timeout: int | None = None) -> None:
        """Connect.

        Args:
            conninfo: A libpq connection string or URL (never logged: it may hold a password).
            connect_timeout: Seconds to wait for the server, if limited.
        """
        import psycopg
        from psycopg.conninfo import make_conninfo
        from psycopg.types.json import set_json_dumps

        if connect_timeout is not None:
            conninfo = make_conninfo(conninfo, connect_timeout=connect_timeout)
        self.conn = psycopg.connect(conninfo, autocommit=True)
        # Logical ``json`` values already are JSON text: pass them through unchanged.
        set_json_dumps(_identity, self.conn)
        self._staging: dict[tuple[str, tuple[str, ...]], str] = {}
        self._staging_pending: list[tuple[str, tuple[str, ...]]] = []  # created in the open tx
        self._staging_names = itertools.count()
        self._optimism: dict[str, Optimism] = {}
        self._timescale: bool | None = None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def has_timescale(self) -> bool:
        """Return whether the timescaledb extension is installed in this database."""
        if self._timescale is None:
            row = self.conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
            self._timescale = row is not None
        return self._timescale

    def ensure_state_tables(self) -> None:
        """Create the offsets, dead-letter and state tables; add ``reason_kind`` to old ones."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (
                    asset_key text NOT NULL,
                    topic text NOT NULL,
                    partition integer NOT NULL,
                    next_offset bigint NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    run_id text,
                    PRIMARY KEY (asset_key, topic, partition))"""
            )
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {DEAD_LETTERS_TABLE} (
                    id bigserial PRIMARY KEY,
                    asset_key text NOT NULL,
                    topic text NOT NULL,
                    partition integer NOT NULL,
                    "offset" bigint NOT NULL,
                    key bytea,
                    raw bytea,
                    reason text NOT NULL,
                    run_id text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    reason_kind text,
                    UNIQUE (asset_key, topic, partition, "offset"))"""
            )
            self.conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
                    scope text NOT NULL,
                    name text NOT NULL,
                    value text NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    run_id text,
                    PRIMARY KEY (scope, name))"""
            )
            if self._column_names(DEAD_LETTERS_TABLE, None).get("reason_kind") is None:
                # A dead-letter table of an earlier version: add the column and classify.
                self.conn.execute(f"ALTER TABLE {DEAD_LETTERS_TABLE} ADD COLUMN reason_kind text")
            old = self.conn.execute(
                f"SELECT id, reason FROM {DEAD_LETTERS_TABLE} WHERE reason_kind IS NULL"
            ).fetchall()
            if old:
                with self.conn.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {DEAD_LETTERS_TABLE} SET reason_kind = %s WHERE id = %s",
                        backfill_reason_kinds(old),
                    )

    def _column_names(self, name: str, schema: str | None) -> dict[str, str]:
        """Return column → ``format_type`` of a live table (empty when it does not exist)."""
        rows = self.conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = COALESCE(%s, current_schema()) "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            (name, schema),
        ).fetchall()
        return {str(column): str(kind) for column, kind in rows}

    def type_changes(self, spec: TableSpec) -> list[TypeChange]:
        """Compare the live table with ``spec`` (nothing when the table does not exist)."""
        live = self._column_names(spec.name, spec.schema)
        qualified = qualified_name(spec.name, spec.schema)
        changes = []
        for column in spec.columns:
            kind = live.get(column.name)
            wanted = POSTGRES_TYPES[column.type]
            if kind is None or kind == wanted:
                continue
            base = _TYPMOD.sub("", kind)
            compatible = base in COMPATIBLE_TYPES.get(column.type, ())
            changes.append(
                TypeChange(qualified, column.name, kind, column.type, wanted, compatible)
            )
        return changes

    def ensure_table(self, spec: TableSpec) -> TargetTable:
        """Create the table when missing, add new columns, check the live column types.

        Raises:
            ColumnTypeMismatch: A live column's type does not accept the logical type's values.
        """
        hypertable = bool(spec.time_column) and self.has_timescale()
        key = conflict_columns_for(spec.key, spec.time_column, hypertable)
        qualified = qualified_name(spec.name, spec.schema)
        columns = tuple(require_sql_identifier(c.name) for c in spec.columns)
        types = tuple(c.type for c in spec.columns)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            if spec.schema:
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(spec.schema)}")
            existing = self._column_names(spec.name, spec.schema)
            if not existing:
                parts = [f"{quote(c.name)} {POSTGRES_TYPES[c.type]}" for c in spec.columns]
                if key:
                    parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in key)})")
                self.conn.execute(f"CREATE TABLE {qualified} ({', '.join(parts)})")
                logger.info("created table %s", qualified)
                if hypertable:
                    self.conn.execute(
                        "SELECT create_hypertable(%s::regclass, %s, if_not_exists => TRUE, "
                        "migrate_data => TRUE)",
                        (qualified, spec.time_column),
                    )
            else:
                for column in spec.columns:
                    if column.name not in existing:
                        self.conn.execute(
                            f"ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS "
                            f"{quote(column.name)} {POSTGRES_TYPES[column.type]}"
                        )
                        logger.info("added column %s to %s", column.name, qualified)
            changes = self.type_changes(spec)
        blocking = [change for change in changes if not change.compatible]
        if blocking:
            raise ColumnTypeMismatch(blocking[0].message())
        cast = tuple(change.column for change in changes)
        return TargetTable(qualified, columns, types, key, hypertable, cast, spec.name, spec.schema)

    def staging_table(self, target: TargetTable) -> str:
        """Return a per-connection TEMP staging table for ``target`` (canonical column types).

        Created once per connection; when created inside a transaction that rolls back, it is
        forgotten and created again next time. Never call it inside a savepoint.
        """
        slot = (target.qualified, target.columns)
        name = self._staging.get(slot)
        if name is None:
            name = f"pp_stage_{next(self._staging_names)}"
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self._staging_pending.append(slot)
            parts = ", ".join(
                f"{quote(c)} {POSTGRES_TYPES[t]}"
                for c, t in zip(target.columns, target.types, strict=True)
            )
            self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {name} ({parts}) ON COMMIT DELETE ROWS"
            )
            self._staging[slot] = name
        return name

    def optimism(self, target: TargetTable) -> Optimism:
        """Return the optimistic-COPY back-off state of ``target`` on this connection."""
        state = self._optimism.get(target.qualified)
        if state is None:
            state = self._optimism[target.qualified] = Optimism()
        return state

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """Open the unit of work: committed on exit, rolled back on an exception."""
        try:
            with self.conn.transaction(), self.conn.cursor() as cursor:
                yield PostgresTransaction(self, cursor)
        except BaseException:
            for slot in self._staging_pending:
                self._staging.pop(slot, None)
            raise
        finally:
            self._staging_pending.clear()

    def read_offsets(self, asset_key: str, topic: str) -> dict[int, int]:
        """Return the stored next offset per partition."""
        rows = self.conn.execute(
            f"SELECT partition, next_offset FROM {OFFSETS_TABLE} "
            "WHERE asset_key = %s AND topic = %s",
            (asset_key, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def read_all_offsets(self, asset_keys: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """Return ``(asset_key, topic, partition, next_offset)`` of many assets, no DDL."""
        from psycopg import errors as pg_errors

        try:
            with self.conn.transaction():
                rows = self.conn.execute(
                    f"SELECT asset_key, topic, partition, next_offset FROM {OFFSETS_TABLE} "
                    "WHERE asset_key = ANY(%s)",
                    (list(asset_keys),),
                ).fetchall()
        except pg_errors.UndefinedTable:
            return []
        return [(str(a), str(t), int(p), int(o)) for a, t, p, o in rows]

    def read_state(self, scope: str, name: str) -> str | None:
        """Return a stored state value, or None."""
        row = self.conn.execute(
            f"SELECT value FROM {STATE_TABLE} WHERE scope = %s AND name = %s", (scope, name)
        ).fetchone()
        return None if row is None else str(row[0])

    def list_dead_letters(
        self, asset_key: str, topic: str, limit: int | None
    ) -> list[StoredDeadLetter]:
        """Return stored dead letters in partition/offset order."""
        params: tuple[Any, ...] = (asset_key, topic) if limit is None else (asset_key, topic, limit)
        rows = self.conn.execute(select_dead_letters_sql("%s", limit), params).fetchall()
        return [stored_dead_letter(row) for row in rows]

    def plan_migration(self, spec: TableSpec) -> list[MigrationStep]:
        """Return the ALTER statements that give the live table the spec's types.

        Only changes the live type cannot absorb are planned. A step is ``lossy`` when some
        stored value does not convert, or does not convert back to itself.
        """
        from pipeline_platform.warehouse.migrate import plan_postgres_steps

        changes = [change for change in self.type_changes(spec) if not change.compatible]
        return plan_postgres_steps(self.conn, changes)

    def apply_migration(self, steps: Sequence[MigrationStep]) -> None:
        """Apply the steps in one transaction (all or nothing)."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            for step in steps:
                self.conn.execute(step.sql)
                logger.info("migrated: %s", step.sql)


def _identity(value: Any) -> Any:
    return value
