"""Warehouse connections and DDL: target tables from mappings and the ingestion state tables.

Two backends share one small interface: PostgreSQL/TimescaleDB through psycopg 3 directly (COPY,
no ORM in the hot path) and SQLite through the standard library. Every identifier is checked
with :func:`pipeline_platform.names.require_sql_identifier` and then double-quoted; every value
is a bound parameter.

State tables (in the default schema of the warehouse):

- ``pp_ingestion_offsets(asset_key, topic, partition, next_offset, updated_at, run_id)``: the next
  offset to read per partition; updated by compare-and-set in the same transaction as the rows.
- ``pp_dead_letters(id, asset_key, topic, partition, offset, key, raw, reason, run_id,
  created_at)``: refused messages with their raw bytes, unique per (asset, topic, partition,
  offset).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from pipeline_platform.names import require_sql_identifier
from pipeline_platform.registry.document import TableConfig

logger = logging.getLogger(__name__)

OFFSETS_TABLE = "pp_ingestion_offsets"
DEAD_LETTERS_TABLE = "pp_dead_letters"

POSTGRES_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamptz",
    "date": "date",
    "json": "jsonb",
    "uuid": "uuid",
}
# Type names for binary COPY (psycopg ``Copy.set_types``).
POSTGRES_COPY_TYPES = {
    "string": "text",
    "integer": "int8",
    "float": "float8",
    "boolean": "bool",
    "timestamp": "timestamptz",
    "date": "date",
    "json": "jsonb",
    "uuid": "uuid",
}
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

_DDL_LOCK = 7_316_402_551  # pg_advisory_xact_lock key serializing DDL of concurrent runs


def quote(name: str) -> str:
    """Validate ``name`` as a safe SQL identifier and return it double-quoted."""
    return f'"{require_sql_identifier(name)}"'


def asset_key_of(table: TableConfig) -> str:
    """Return the asset key string of an ingested table: ``<data_source>/<table>``."""
    return f"{table.data_source}/{table.name}"


@dataclass(frozen=True)
class TargetTable:
    """A target table as ensured in the warehouse.

    Attributes:
        qualified: Quoted, schema-qualified name.
        columns: Mapped columns in row order.
        types: Field types in row order.
        conflict_columns: Columns of the primary key used for upserts (empty: append only).
        hypertable: Whether the table is a TimescaleDB hypertable.
    """

    qualified: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    conflict_columns: tuple[str, ...]
    hypertable: bool = False


class FencedError(RuntimeError):
    """Another run committed the same offset range first; this transaction was rolled back."""


def conflict_columns_for(table: TableConfig, hypertable: bool) -> tuple[str, ...]:
    """Return the primary key: the upsert key, plus the time column on a hypertable."""
    key = tuple(table.upsert_key)
    if key and hypertable and table.time_column and table.time_column not in key:
        return (*key, table.time_column)
    return key


class PostgresWarehouse:
    """A psycopg 3 connection to a PostgreSQL/TimescaleDB warehouse (autocommit + explicit tx)."""

    backend = "postgresql"

    def __init__(self, conninfo: str) -> None:
        """Connect.

        Args:
            conninfo: A libpq connection string or URL.
        """
        import psycopg
        from psycopg.types.json import set_json_dumps

        self.conn = psycopg.connect(conninfo, autocommit=True)
        # The mapping already renders JSON text: pass it through unchanged.
        set_json_dumps(_identity, self.conn)
        self._staging: dict[str, str] = {}
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
        """Create the offsets and dead-letter tables when missing."""
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
                    UNIQUE (asset_key, topic, partition, "offset"))"""
            )

    def ensure_table(self, table: TableConfig) -> TargetTable:
        """Create the target table when missing and add columns that mappings added.

        Args:
            table: The table configuration.

        Returns:
            The ensured target table.
        """
        hypertable = bool(table.time_column) and self.has_timescale()
        key = conflict_columns_for(table, hypertable)
        schema = table.db_schema
        qualified = f"{quote(schema)}.{quote(table.name)}" if schema else quote(table.name)
        columns = tuple(require_sql_identifier(m.column) for m in table.mappings)
        types = tuple(m.type for m in table.mappings)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            if schema:
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            existing = {
                row[0]
                for row in self.conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = COALESCE(%s, current_schema()) AND table_name = %s",
                    (schema, table.name),
                )
            }
            if not existing:
                parts = [
                    f"{quote(c)} {POSTGRES_TYPES[t]}" for c, t in zip(columns, types, strict=True)
                ]
                if key:
                    parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in key)})")
                self.conn.execute(f"CREATE TABLE {qualified} ({', '.join(parts)})")
                logger.info("created table %s", qualified)
                if hypertable:
                    self.conn.execute(
                        "SELECT create_hypertable(%s::regclass, %s, if_not_exists => TRUE, "
                        "migrate_data => TRUE)",
                        (qualified, table.time_column),
                    )
            else:
                for column, kind in zip(columns, types, strict=True):
                    if column not in existing:
                        self.conn.execute(
                            f"ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS "
                            f"{quote(column)} {POSTGRES_TYPES[kind]}"
                        )
                        logger.info("added column %s to %s", column, qualified)
        return TargetTable(qualified, columns, types, key, hypertable)

    def staging_table(self, target: TargetTable) -> str:
        """Return a per-connection TEMP staging table for ``target`` (created once)."""
        name = self._staging.get(target.qualified)
        if name is None:
            name = f"pp_stage_{len(self._staging)}"
            self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {name} "
                f"(LIKE {target.qualified} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staging[target.qualified] = name
        return name

    def read_offsets(self, asset_key: str, topic: str) -> dict[int, int]:
        """Return the stored next offset per partition."""
        rows = self.conn.execute(
            f"SELECT partition, next_offset FROM {OFFSETS_TABLE} "
            "WHERE asset_key = %s AND topic = %s",
            (asset_key, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}


class SqliteWarehouse:
    """A stdlib sqlite3 connection to a SQLite warehouse (explicit BEGIN IMMEDIATE transactions)."""

    backend = "sqlite"

    def __init__(self, path: str) -> None:
        """Open (and create) the database file.

        Args:
            path: Database file path, or ``:memory:``.
        """
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def ensure_state_tables(self) -> None:
        """Create the offsets and dead-letter tables when missing."""
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
                UNIQUE (asset_key, topic, partition, "offset"))"""
        )

    def ensure_table(self, table: TableConfig) -> TargetTable:
        """Create the target table when missing and add columns that mappings added.

        SQLite has no schemas: ``db_schema`` is ignored here.

        Args:
            table: The table configuration.

        Returns:
            The ensured target table.
        """
        qualified = quote(table.name)
        columns = tuple(require_sql_identifier(m.column) for m in table.mappings)
        types = tuple(m.type for m in table.mappings)
        key = conflict_columns_for(table, hypertable=False)
        existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({qualified})")}
        if not existing:
            parts = [f"{quote(c)} {SQLITE_TYPES[t]}" for c, t in zip(columns, types, strict=True)]
            if key:
                parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in key)})")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(parts)})")
        else:
            for column, kind in zip(columns, types, strict=True):
                if column not in existing:
                    self.conn.execute(
                        f"ALTER TABLE {qualified} ADD COLUMN {quote(column)} {SQLITE_TYPES[kind]}"
                    )
        return TargetTable(qualified, columns, types, key, False)

    def read_offsets(self, asset_key: str, topic: str) -> dict[int, int]:
        """Return the stored next offset per partition."""
        rows = self.conn.execute(
            f"SELECT partition, next_offset FROM {OFFSETS_TABLE} WHERE asset_key = ? AND topic = ?",
            (asset_key, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}


Warehouse = PostgresWarehouse | SqliteWarehouse


def postgres_conninfo(url: str) -> str:
    """Turn a SQLAlchemy-style PostgreSQL URL into a libpq connection string.

    Args:
        url: ``postgresql+psycopg://user:password@host:port/db?sslmode=...`` (any driver suffix).

    Returns:
        A libpq conninfo string (never logged: it may hold a password).
    """
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    params: dict[str, Any] = {}
    if parsed.host:
        params["host"] = parsed.host
    if parsed.port:
        params["port"] = parsed.port
    if parsed.database:
        params["dbname"] = parsed.database
    if parsed.username:
        params["user"] = parsed.username
    if parsed.password is not None:
        params["password"] = parsed.password
    for name, value in parsed.query.items():
        params[name] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **params)


def connect_warehouse(url: str) -> Warehouse:
    """Open a warehouse connection from a SQLAlchemy-style URL.

    Args:
        url: ``postgresql+psycopg://...`` (or ``postgresql://``) or ``sqlite:///path``.

    Returns:
        A connected warehouse.

    Raises:
        ValueError: The URL names an unsupported backend.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres", "timescaledb"):
        return PostgresWarehouse(postgres_conninfo(url))
    if backend == "sqlite":
        return SqliteWarehouse(parsed.database or ":memory:")
    raise ValueError(f"unsupported warehouse backend {backend!r} (use postgresql or sqlite)")


def _identity(value: Any) -> Any:
    return value
