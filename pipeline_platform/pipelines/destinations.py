"""Where SQL loaders write: one transaction per run, rows and watermarks committed together.

:class:`Destination` is the small interface the SQL loader needs (ensure a table from
``(column, logical type)`` pairs, write a chunk, read/commit pipeline state in the same
transaction as the rows). :func:`open_destination` picks the backend from the URL: PostgreSQL
(psycopg, ``COPY FROM STDIN`` of pyarrow-written CSV, staging + ``ON CONFLICT`` for upserts) or
SQLite (stdlib ``executemany``). Identifiers are validated and quoted by one function.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.engine import make_url

from pipeline_platform.names import require_sql_identifier

STATE_TABLE = "pp_pipeline_state"
Column = tuple[str, str]  # (name, logical type)

_PG_TYPES = {"string": "text", "integer": "bigint", "float": "double precision",
             "boolean": "boolean", "timestamp": "timestamptz", "date": "date", "json": "jsonb",
             "uuid": "uuid"}  # fmt: skip
_SQLITE_TYPES = {"string": "TEXT", "integer": "INTEGER", "float": "REAL", "boolean": "INTEGER",
                 "timestamp": "TEXT", "date": "TEXT", "json": "TEXT", "uuid": "TEXT"}  # fmt: skip


def quote(name: str) -> str:
    """Validate ``name`` as a safe SQL identifier and return it double-quoted."""
    return f'"{require_sql_identifier(name)}"'


def logical_type(arrow_type: pa.DataType) -> str:
    """Return the logical column type of an Arrow type."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return "string"


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert a chunk to Arrow; object columns that Arrow cannot type become text."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fixed = frame.copy()
        for name in fixed.columns:
            if fixed[name].dtype == object:
                fixed[name] = fixed[name].astype("string")
        return pa.Table.from_pandas(fixed, preserve_index=False)


def columns_of(table: pa.Table) -> list[Column]:
    """Return ``(name, logical type)`` for every column of an Arrow table."""
    return [(f.name, logical_type(f.type)) for f in table.schema]


@dataclass(frozen=True)
class Target:
    """A destination table and how rows are written into it."""

    schema: str | None
    table: str
    mode: str = "append"  # append | replace | upsert
    key: tuple[str, ...] = ()

    def qualified(self, name: str | None = None) -> str:
        """Return the quoted (schema-qualified) name of the table or of ``name``."""
        table = quote(name or self.table)
        return f"{quote(self.schema)}.{table}" if self.schema else table

    @property
    def shadow(self) -> str:
        """Name of the table a replace load fills before the swap (≤ 63 characters)."""
        return "pp_new_" + hashlib.sha256(self.table.encode()).hexdigest()[:16]


class Destination(Protocol):
    """One destination database, one open transaction per run."""

    def prepare(self, target: Target, columns: Sequence[Column]) -> None:
        """Create the table when missing, add new columns, set up staging for the mode."""
        ...

    def write(self, target: Target, table: pa.Table) -> int:
        """Write one chunk (inside the run's transaction); return the rows written."""
        ...

    def read_state(self, pipeline: str, node: str) -> Any:
        """Return the stored state (a watermark) of a pipeline node, or None."""
        ...

    def commit(self, targets: Sequence[Target], state: Mapping[tuple[str, str], Any]) -> None:
        """Finish upserts and swaps, store ``state``, and commit it all in one transaction."""
        ...

    def rollback(self) -> None:
        """Abandon everything written in this run."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


def _state_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass
class PostgresDestination:
    """PostgreSQL/TimescaleDB: COPY FROM STDIN (CSV written by pyarrow), one transaction."""

    conninfo: str
    _conn: Any = field(default=None, repr=False)
    _columns: dict[str, list[str]] = field(default_factory=dict)

    def _connection(self) -> Any:
        if self._conn is None:
            import psycopg

            self._conn = psycopg.connect(self.conninfo, autocommit=False)
            self._conn.execute("SET TIME ZONE 'UTC'")
        return self._conn

    def _existing(self, target: Target, name: str) -> list[str]:
        rows = self._connection().execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (target.qualified(name),),
        )
        return [row[0] for row in rows]

    def prepare(self, target: Target, columns: Sequence[Column]) -> None:
        conn = self._connection()
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (target.qualified(),))
        if target.schema:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}")
        name = target.shadow if target.mode == "replace" else target.table
        if target.mode == "replace":
            conn.execute(f"DROP TABLE IF EXISTS {target.qualified(name)}")
        existing = self._existing(target, name)
        if not existing:
            defs = [f"{quote(c)} {_PG_TYPES[t]}" for c, t in columns]
            if target.key:
                defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in target.key)})")
            conn.execute(f"CREATE TABLE {target.qualified(name)} ({', '.join(defs)})")
        else:
            for column, type_name in columns:
                if column not in existing:
                    conn.execute(
                        f"ALTER TABLE {target.qualified(name)} "
                        f"ADD COLUMN {quote(column)} {_PG_TYPES[type_name]}"
                    )
        if target.mode == "upsert":
            stage = quote(f"pp_stage_{target.shadow[7:]}")
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
                f"SELECT * FROM {target.qualified()} WITH NO DATA"
            )
            conn.execute(f"ALTER TABLE {stage} ADD COLUMN IF NOT EXISTS pp_seq bigserial")
            for column, type_name in columns:
                conn.execute(
                    f"ALTER TABLE {stage} ADD COLUMN IF NOT EXISTS {quote(column)} "
                    f"{_PG_TYPES[type_name]}"
                )
        self._columns[target.table] = [c for c, _ in columns]

    def _into(self, target: Target) -> str:
        if target.mode == "replace":
            return target.qualified(target.shadow)
        if target.mode == "upsert":
            return quote(f"pp_stage_{target.shadow[7:]}")
        return target.qualified()

    def write(self, target: Target, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        names = ", ".join(quote(n) for n in table.column_names)
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        with (
            self._connection().cursor() as cursor,
            cursor.copy(f"COPY {self._into(target)} ({names}) FROM STDIN (FORMAT csv)") as copy,
        ):
            copy.write(buffer.getbuffer())
        return table.num_rows

    def read_state(self, pipeline: str, node: str) -> Any:
        conn = self._connection()
        if conn.execute("SELECT to_regclass(%s)", (STATE_TABLE,)).fetchone()[0] is None:
            return None
        row = conn.execute(
            f"SELECT value FROM {STATE_TABLE} WHERE pipeline = %s AND node = %s",
            (pipeline, node),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def commit(self, targets: Sequence[Target], state: Mapping[tuple[str, str], Any]) -> None:
        conn = self._connection()
        for target in targets:
            if target.mode == "upsert":
                self._merge(target)
            elif target.mode == "replace":
                old = quote("pp_old_" + target.shadow[7:])
                conn.execute(f"ALTER TABLE IF EXISTS {target.qualified()} RENAME TO {old}")
                conn.execute(
                    f"ALTER TABLE {target.qualified(target.shadow)} RENAME TO {quote(target.table)}"
                )
                schema = f"{quote(target.schema)}." if target.schema else ""
                conn.execute(f"DROP TABLE IF EXISTS {schema}{old}")
        if state:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (pipeline text, node text, value text "
                "NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (pipeline, node))"
            )
            now = datetime.now(UTC)
            for (pipeline, node), value in state.items():
                conn.execute(
                    f"INSERT INTO {STATE_TABLE} VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (pipeline, node) DO UPDATE SET value = EXCLUDED.value, "
                    "updated_at = EXCLUDED.updated_at",
                    (pipeline, node, _state_json(value), now),
                )
        conn.commit()

    def _merge(self, target: Target) -> None:
        columns = self._columns[target.table]
        names = ", ".join(quote(c) for c in columns)
        keys = ", ".join(quote(k) for k in target.key)
        updates = ", ".join(
            f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in target.key
        )
        stage = quote(f"pp_stage_{target.shadow[7:]}")
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        self._connection().execute(
            f"INSERT INTO {target.qualified()} ({names}) SELECT DISTINCT ON ({keys}) {names} "
            f"FROM {stage} ORDER BY {keys}, pp_seq DESC ON CONFLICT ({keys}) {action}"
        )
        self._connection().execute(f"TRUNCATE {stage}")

    def rollback(self) -> None:
        if self._conn is not None:
            self._conn.rollback()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class SqliteDestination:
    """SQLite (the embedded default): one transaction, ``executemany`` inserts."""

    path: str
    _conn: sqlite3.Connection | None = field(default=None, repr=False)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def prepare(self, target: Target, columns: Sequence[Column]) -> None:
        conn = self._connection()
        name = target.shadow if target.mode == "replace" else target.table
        if target.mode == "replace":
            conn.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        existing = [row[1] for row in conn.execute(f"PRAGMA table_info({quote(name)})")]
        if not existing:
            defs = [f"{quote(c)} {_SQLITE_TYPES[t]}" for c, t in columns]
            if target.key:
                defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in target.key)})")
            conn.execute(f"CREATE TABLE {quote(name)} ({', '.join(defs)})")
        for column, type_name in columns:
            if existing and column not in existing:
                conn.execute(
                    f"ALTER TABLE {quote(name)} ADD COLUMN {quote(column)} "
                    f"{_SQLITE_TYPES[type_name]}"
                )

    def write(self, target: Target, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        frame = table.to_pandas()
        for name, dtype in zip(table.column_names, table.schema.types, strict=True):
            if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
                frame[name] = table.column(name).cast(pa.string()).to_pandas()
        frame = frame.astype(object).where(frame.notna(), None)
        names = ", ".join(quote(n) for n in table.column_names)
        marks = ", ".join("?" for _ in table.column_names)
        into = quote(target.shadow if target.mode == "replace" else target.table)
        sql = f"INSERT INTO {into} ({names}) VALUES ({marks})"
        if target.mode == "upsert":
            keys = ", ".join(quote(k) for k in target.key)
            updates = ", ".join(
                f"{quote(c)} = excluded.{quote(c)}"
                for c in table.column_names
                if c not in target.key
            )
            sql += f" ON CONFLICT ({keys}) " + (
                f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            )
        self._connection().executemany(sql, frame.itertuples(index=False, name=None))
        return table.num_rows

    def read_state(self, pipeline: str, node: str) -> Any:
        conn = self._connection()
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (STATE_TABLE,)
        ).fetchone()
        if not found:
            return None
        row = conn.execute(
            f"SELECT value FROM {STATE_TABLE} WHERE pipeline = ? AND node = ?", (pipeline, node)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def commit(self, targets: Sequence[Target], state: Mapping[tuple[str, str], Any]) -> None:
        conn = self._connection()
        for target in targets:
            if target.mode == "replace":
                conn.execute(f"DROP TABLE IF EXISTS {quote(target.table)}")
                conn.execute(f"ALTER TABLE {quote(target.shadow)} RENAME TO {quote(target.table)}")
        if state:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (pipeline TEXT, node TEXT, "
                "value TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (pipeline, node))"
            )
            now = datetime.now(UTC).isoformat()
            conn.executemany(
                f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?, ?) ON CONFLICT (pipeline, node) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [(p, n, _state_json(v), now) for (p, n), v in state.items()],
            )
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
            self._conn.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        if self._conn is not None:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None


def open_destination(url: str) -> PostgresDestination | SqliteDestination:
    """Return the destination of a data source URL (the only place that tells backends apart)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return PostgresDestination(
            parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        )
    if backend == "sqlite":
        return SqliteDestination(parsed.database or ":memory:")
    raise ValueError(f"no pipeline destination for {backend} databases")
