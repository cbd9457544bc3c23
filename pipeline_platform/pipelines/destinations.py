"""Where SQL loaders write: the warehouse interface, one transaction per run.

A :class:`Destination` wraps one :class:`~pipeline_platform.warehouse.Warehouse` connection of a
data source and keeps one unit of work open for the whole run: tables are ensured from the
first chunk's ``(column, logical type)`` pairs, chunks are written with ``write_arrow``, and at
the end the upsert/replace finishes and the watermarks move by compare-and-set, all committed
together. Nothing here tells backends apart: ``connect_warehouse`` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline_platform.warehouse import (
    TableSpec,
    TargetTable,
    Warehouse,
    WarehouseTransaction,
    WriteMode,
    connect_warehouse,
)

Column = tuple[str, str]  # (name, logical type)
#: State key → (value read at the start of the run or None, new value).
StateUpdates = Mapping[tuple[str, str], tuple[str | None, str]]


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

    @property
    def shadow(self) -> str:
        """Name of the table a replace load fills before the swap (≤ 63 characters)."""
        return "pp_new_" + hashlib.sha256(f"{self.schema}.{self.table}".encode()).hexdigest()[:16]


class Destination:
    """One data source written by a run: one warehouse connection, one open transaction."""

    def __init__(self, url: str, run_id: str) -> None:
        """Connect (the URL is never logged)."""
        self.warehouse: Warehouse = connect_warehouse(url)
        self.run_id = run_id
        self._unit: AbstractContextManager[WarehouseTransaction] | None = None
        self._tx: WarehouseTransaction | None = None
        self._tables: dict[Target, TargetTable] = {}
        self._state_ready = False

    def _transaction(self) -> WarehouseTransaction:
        if self._tx is None:
            if not self._state_ready:
                self.warehouse.ensure_state_tables()  # own transaction, before ours
                self._state_ready = True
            self._unit = self.warehouse.transaction()
            self._tx = self._unit.__enter__()
        return self._tx

    def prepare(self, target: Target, columns: Sequence[Column]) -> None:
        """Ensure the table (the shadow table for replace) inside the run's transaction."""
        self._transaction()
        name = target.shadow if target.mode == "replace" else target.table
        spec = TableSpec.of(name, columns, key=target.key, schema=target.schema)
        self._tables[target] = self.warehouse.ensure_table(spec)

    def write(self, target: Target, table: pa.Table) -> int:
        """Write one chunk into the run's transaction."""
        mode: WriteMode = "upsert" if target.mode == "upsert" else "append"
        return self._transaction().write_arrow(self._tables[target], table, mode=mode)

    @property
    def streams_csv(self) -> bool:
        """True when raw PostgreSQL CSV can be streamed in (a PostgreSQL warehouse)."""
        return self.warehouse.backend == "postgresql"

    def copy_csv(self, target: Target, columns: Sequence[str], blocks: Any) -> int:
        """Stream PostgreSQL CSV blocks into the (prepared) table, in the run's transaction."""
        return self._transaction().copy_csv(self._tables[target], columns, blocks)

    def read_state(self, scope: str, name: str) -> str | None:
        """Return a stored state value (a watermark's JSON text), or None."""
        if not self._state_ready:
            self.warehouse.ensure_state_tables()
            self._state_ready = True
        return self.warehouse.read_state(scope, name)

    def commit(self, targets: Sequence[Target], state: StateUpdates) -> None:
        """Swap replaced tables, move the state, and commit everything in one transaction.

        Raises:
            FencedError: another run moved the state since it was read (all rolled back).
        """
        tx = self._transaction()
        for target in targets:
            if target.mode == "replace" and target in self._tables:
                tx.swap_table(self._tables[target], target.table)
        for (scope, name), (expected, value) in state.items():
            tx.compare_and_set_state(scope, name, expected, value, self.run_id)
        unit, self._unit, self._tx = self._unit, None, None
        if unit is not None:
            unit.__exit__(None, None, None)

    def close(self) -> None:
        """Roll back whatever was not committed and close the connection."""
        unit, self._unit, self._tx = self._unit, None, None
        try:
            if unit is not None:
                unit.__exit__(RuntimeError, RuntimeError("run abandoned"), None)
        except RuntimeError:
            pass
        finally:
            self.warehouse.close()
