"""Column type migrations: give live columns the types the registry declares.

``pipeline-platform warehouse migrate`` plans one ``ALTER TABLE ... ALTER COLUMN ... TYPE ...
USING ...`` per changed column, prints it, and applies all of them in one transaction. A step
is *lossy* when a stored value does not convert, or does not convert back to the same value
(``'yes'`` to boolean, ``1.5`` to integer); lossy steps are refused unless forced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_platform.warehouse.base import MigrationStep, TableSpec, TypeChange, Warehouse
from pipeline_platform.warehouse.quoting import quote

#: Conversions with no direct cast go through text (``boolean`` → ``bigint`` through int).
_VIA = {("boolean", "bigint"): "integer", ("boolean", "double precision"): "integer"}


def using_expression(column: str, live: str, db_type: str) -> str:
    """Return the ``USING`` expression converting ``column`` from ``live`` to ``db_type``."""
    via = _VIA.get((live, db_type))
    if via is not None:
        return f"{quote(column)}::{via}::{db_type}"
    return f"{quote(column)}::{db_type}"


def plan_postgres_steps(conn: Any, changes: Sequence[TypeChange]) -> list[MigrationStep]:
    """Plan the ALTER statements of ``changes`` and check each for data loss (read only).

    Args:
        conn: An autocommit psycopg connection.
        changes: Type changes the live columns cannot absorb.

    Returns:
        One step per change.
    """
    from psycopg import errors as pg_errors

    steps = []
    for change in changes:
        using = using_expression(change.column, change.live, change.db_type)
        sql = (
            f"ALTER TABLE {change.table} ALTER COLUMN {quote(change.column)} "
            f"TYPE {change.db_type} USING {using}"
        )
        lossy: str | None = None
        if change.db_type != "text":
            try:
                with conn.transaction():
                    row = conn.execute(
                        f"SELECT count(*) FROM {change.table} WHERE {quote(change.column)} "
                        f"IS NOT NULL AND (({using})::{change.live}) IS DISTINCT FROM "
                        f"{quote(change.column)}"
                    ).fetchone()
                changed = int(row[0]) if row else 0
                if changed:
                    lossy = f"{changed} stored value(s) would change"
            except (pg_errors.DataError, pg_errors.CannotCoerce) as error:
                lossy = f"stored values do not convert ({error.diag.message_primary})"
            except pg_errors.Error:
                lossy = "no way to convert back to check the stored values"
        steps.append(MigrationStep(change, sql, lossy))
    return steps


@dataclass(frozen=True)
class MigrationPlan:
    """The planned steps of every table, and the refused ones."""

    steps: tuple[MigrationStep, ...]

    @property
    def lossy(self) -> tuple[MigrationStep, ...]:
        """Steps that would lose data."""
        return tuple(step for step in self.steps if step.lossy is not None)


def plan(warehouse: Warehouse, specs: Sequence[TableSpec]) -> MigrationPlan:
    """Plan the migration of every table of ``specs`` on one warehouse."""
    steps: list[MigrationStep] = []
    for spec in specs:
        steps.extend(warehouse.plan_migration(spec))
    return MigrationPlan(tuple(steps))
