"""The warehouse interface: what ingestion and table pipelines need from a target database.

One :class:`Warehouse` per connection, with a PostgreSQL/TimescaleDB and a SQLite backend
(:mod:`pipeline_platform.warehouse.connect` picks one from a URL). Callers describe tables as
data (:class:`TableSpec`: columns with *logical* types, an optional key and time column) and
write inside a unit of work (:meth:`Warehouse.transaction`), so rows, dead letters and state
(Kafka offsets, a table pipeline's watermark) commit or roll back together.

Logical types (the values a writer passes, per column):

========== ====================================== ================= ===============
type       Python value                           PostgreSQL        SQLite
========== ====================================== ================= ===============
string     ``str``                                ``text``          ``TEXT``
integer    ``int`` (signed 64 bit)                ``bigint``        ``INTEGER``
float      ``float``                              ``double prec.``  ``REAL``
boolean    ``bool``                               ``boolean``       ``INTEGER`` 0/1
timestamp  aware ``datetime``                     ``timestamptz``   ``TEXT`` ISO UTC
date       ``date``                               ``date``          ``TEXT`` ISO
json       JSON text (``str``)                    ``jsonb``         ``TEXT``
uuid       ``uuid.UUID``                          ``uuid``          ``TEXT``
========== ====================================== ================= ===============

State tables (created by :meth:`Warehouse.ensure_state_tables` in the default schema):

- ``pp_ingestion_offsets(asset_key, topic, partition, next_offset, updated_at, run_id)``
- ``pp_dead_letters(id, asset_key, topic, partition, offset, key, raw, reason, reason_kind,
  run_id, created_at)``; ``reason_kind`` is one of :data:`REASON_KINDS`
- ``pp_state(scope, name, value, updated_at, run_id)``: named state values (a watermark as JSON
  text) moved by compare-and-set in the transaction of the rows they describe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from pipeline_platform.warehouse.rejects import DeadLetterRow, RejectedRow, StoredDeadLetter

LogicalType = Literal["string", "integer", "float", "boolean", "timestamp", "date", "json", "uuid"]
LOGICAL_TYPES: tuple[str, ...] = get_args(LogicalType)

#: How rows are written: ``append`` inserts, ``upsert`` inserts or updates by the table key
#: (the last row for a key in a batch must already have won: rows are unique by key).
WriteMode = Literal["append", "upsert"]

OFFSETS_TABLE = "pp_ingestion_offsets"
DEAD_LETTERS_TABLE = "pp_dead_letters"
STATE_TABLE = "pp_state"

#: Per partition: (expected stored next offset or None when no row exists yet, new next offset).
OffsetUpdates = Mapping[int, tuple[int | None, int]]


class FencedError(RuntimeError):
    """Another run committed the same offset range (or state) first; the transaction rolled back."""


class ColumnTypeMismatch(RuntimeError):
    """A live column's type differs from the registry's and was not migrated."""


@dataclass(frozen=True)
class ColumnSpec:
    """A column: its name and logical type."""

    name: str
    type: str


@dataclass(frozen=True)
class TableSpec:
    """A target table as data.

    Attributes:
        name: Table name (a safe SQL identifier).
        columns: Columns in row order.
        key: Key columns (upserts and the primary key); empty = append only.
        schema: Schema (PostgreSQL); None = the default schema. Ignored by SQLite.
        time_column: The time column; the table becomes a TimescaleDB hypertable where the
            extension exists (the time column then joins the primary key).
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    schema: str | None = None
    time_column: str | None = None

    @staticmethod
    def of(
        name: str,
        columns: Sequence[tuple[str, str]],
        key: Sequence[str] = (),
        schema: str | None = None,
        time_column: str | None = None,
    ) -> TableSpec:
        """Build a spec from ``(column, logical type)`` pairs."""
        return TableSpec(
            name, tuple(ColumnSpec(c, t) for c, t in columns), tuple(key), schema, time_column
        )


@dataclass(frozen=True)
class TargetTable:
    """A table as ensured in the warehouse (what a transaction writes into).

    Attributes:
        qualified: Quoted, schema-qualified name.
        columns: Columns in row order.
        types: Logical types in row order.
        conflict_columns: Primary key used for upserts (empty: append only).
        hypertable: Whether the table is a TimescaleDB hypertable.
        cast_columns: Columns whose live type differs from the canonical one but accepts the
            value by an assignment cast (``varchar(n)``, ``integer``...): such tables are
            written through staging so the database checks every value.
        name: Bare table name.
        schema: Schema, if any.
    """

    qualified: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    conflict_columns: tuple[str, ...]
    hypertable: bool = False
    cast_columns: tuple[str, ...] = ()
    name: str = ""
    schema: str | None = None


@dataclass(frozen=True)
class TypeChange:
    """A live column whose type differs from the registry's.

    Attributes:
        table: Quoted, qualified table name.
        column: Column name.
        live: The live database type.
        wanted: The logical type in the registry.
        db_type: The database type the logical type maps to.
        compatible: True when the live type accepts the values by assignment cast (no
            migration needed; ``varchar(n)`` for ``string`` for example).
    """

    table: str
    column: str
    live: str
    wanted: str
    db_type: str
    compatible: bool

    def message(self) -> str:
        """Return the one-line reason shown to the user."""
        name = self.table.replace('"', "")
        return (
            f"column {self.column} of {name} is {self.live}, the registry says {self.wanted}: "
            "run `pipeline-platform warehouse migrate`"
        )


@dataclass(frozen=True)
class MigrationStep:
    """One planned ``ALTER TABLE ... ALTER COLUMN ... TYPE ... USING ...``."""

    change: TypeChange
    sql: str
    lossy: str | None = None  # why the conversion would lose data, or None


class WarehouseTransaction(Protocol):
    """One open database transaction (the unit of work)."""

    def write_rows(
        self,
        target: TargetTable,
        rows: Sequence[tuple[Any, ...]],
        *,
        mode: WriteMode | None = None,
        isolate_rejects: bool = False,
    ) -> list[RejectedRow]:
        """Write rows (binary COPY / staging + ON CONFLICT on PostgreSQL, one executemany on
        SQLite); ``mode`` defaults to ``upsert`` when the table has a key, else ``append``.

        With ``isolate_rejects``, a batch the database refuses for its data (type, range,
        constraint, encoding) is bisected under savepoints: the refused rows are returned, the
        others written. Without it (and always for connection or server errors) it raises.
        """
        ...

    def delete_all(self, target: TargetTable) -> None:
        """Delete every row of ``target`` (a ``replace`` load), in this transaction."""
        ...

    def write_arrow(self, target: TargetTable, table: Any, *, mode: WriteMode | None = None) -> int:
        """Write a whole chunk (a ``pyarrow.Table`` whose columns are columns of ``target``).

        PostgreSQL: text COPY of the chunk (staging + ON CONFLICT for a keyed upsert, rows
        unique by key); SQLite: ``write_rows``. Returns the rows written.
        """
        ...

    def copy_csv(self, target: TargetTable, columns: Sequence[str], blocks: Any) -> int:
        """Append rows given as PostgreSQL CSV blocks (as ``COPY … TO STDOUT`` writes them).

        PostgreSQL only (``Warehouse.backend == "postgresql"``): the blocks go straight into
        ``COPY … FROM STDIN (FORMAT csv)``, never parsed in Python. Returns the rows copied.
        """
        ...

    def swap_table(self, shadow: TargetTable, name: str) -> None:
        """Replace table ``name`` (same schema as ``shadow``) by ``shadow``, in this transaction.

        Readers see the old table until the commit and the new one after it (a ``replace``
        load: fill a new table, then drop the old one and rename the new one atomically).
        """
        ...

    def compare_and_set_offsets(
        self, asset_key: str, topic: str, offsets: OffsetUpdates, run_id: str
    ) -> None:
        """Move each partition's next offset only from its expected value.

        Raises:
            FencedError: A stored offset was not the expected one.
        """
        ...

    def compare_and_set_state(
        self, scope: str, name: str, expected: str | None, value: str, run_id: str
    ) -> None:
        """Set a state value only if it still is ``expected`` (None: not set yet).

        Raises:
            FencedError: The stored value was not ``expected``.
        """
        ...

    def insert_dead_letters(
        self, asset_key: str, topic: str, dead_letters: Sequence[DeadLetterRow], run_id: str
    ) -> None:
        """Insert dead letters (or refresh the reason of those already stored)."""
        ...

    def resolve_dead_letters(
        self, resolved_ids: Sequence[int], still_failing: Sequence[tuple[int, str]], run_id: str
    ) -> None:
        """Delete replayed dead letters and update the reason of those still failing."""
        ...


class Warehouse(Protocol):
    """A connection to a warehouse database (one per thread)."""

    #: ``postgresql`` or ``sqlite``.
    backend: str
    #: Whether several connections can write at once (False for SQLite: one writer).
    parallel_writers: bool

    def close(self) -> None:
        """Close the connection."""
        ...

    def ensure_state_tables(self) -> None:
        """Create (and migrate) the offsets, dead-letter and state tables."""
        ...

    def ensure_table(self, spec: TableSpec) -> TargetTable:
        """Create the table when missing, add new columns, check the live column types.

        Raises:
            ColumnTypeMismatch: A live column's type does not accept the logical type's values.
        """
        ...

    def type_changes(self, spec: TableSpec) -> list[TypeChange]:
        """Compare the live table with ``spec`` (nothing when the table does not exist)."""
        ...

    def plan_migration(self, spec: TableSpec) -> list[MigrationStep]:
        """Return the ALTER statements that give the live table the spec's types."""
        ...

    def apply_migration(self, steps: Sequence[MigrationStep]) -> None:
        """Apply the steps in one transaction."""
        ...

    def transaction(self) -> AbstractContextManager[WarehouseTransaction]:
        """Open the unit of work: committed on exit, rolled back on an exception."""
        ...

    def read_offsets(self, asset_key: str, topic: str) -> dict[int, int]:
        """Return the stored next offset per partition."""
        ...

    def read_all_offsets(self, asset_keys: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """Return ``(asset_key, topic, partition, next_offset)`` of many assets, no DDL.

        A missing offsets table (nothing ingested yet) gives no rows.
        """
        ...

    def read_state(self, scope: str, name: str) -> str | None:
        """Return a stored state value, or None."""
        ...

    def list_dead_letters(
        self,
        asset_key: str,
        topic: str,
        limit: int | None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
    ) -> list[StoredDeadLetter]:
        """Return stored dead letters in partition/offset order (of ``kind``, since ``since``)."""
        ...


def conflict_columns_for(
    key: Sequence[str], time_column: str | None, hypertable: bool
) -> tuple[str, ...]:
    """Return the primary key: the key, plus the time column on a hypertable."""
    key = tuple(key)
    if key and hypertable and time_column and time_column not in key:
        return (*key, time_column)
    return key
