"""Column types that follow the registry: compare mapped columns with live tables, migrate.

Used by ``registry validate --against-warehouse``, ``registry import`` (warnings) and
``warehouse migrate``. A live column whose type accepts the registry type's values by an
assignment cast (``varchar(n)`` for ``string``...) is fine; any other difference is a change
to migrate, and ingestion refuses to run until it is (one-line reason, never a binary-format
error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline_platform.ingestion.tables import table_spec_of
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import Problem
from pipeline_platform.warehouse import MigrationStep, Warehouse, connect_warehouse

#: Data source name → warehouse URL.
UrlFor = Callable[[str], str]


@dataclass(frozen=True)
class PlannedStep:
    """A migration step with the data source it runs on."""

    data_source: str
    step: MigrationStep


@contextmanager
def _warehouses(url_for: UrlFor, read_only: bool = True) -> Iterator[Callable[[str], Warehouse]]:
    """Yield a function opening (once) the warehouse of a data source; close them all after."""
    opened: dict[str, Warehouse] = {}

    def get(data_source: str) -> Warehouse:
        url = url_for(data_source)
        if url not in opened:
            opened[url] = connect_warehouse(url, connect_timeout=10, read_only=read_only)
        return opened[url]

    try:
        yield get
    finally:
        for warehouse in opened.values():
            warehouse.close()


def column_problems(document: RegistryDocument, url_for: UrlFor) -> list[Problem]:
    """Return a problem per mapped column whose live type differs from the registry's.

    Args:
        document: The registry.
        url_for: Data source name → warehouse URL.

    Returns:
        Problems with the mapping's path and the one-line reason.
    """
    problems: list[Problem] = []
    with _warehouses(url_for) as warehouse_of:
        for index, topic in enumerate(document.topics):
            table = topic.table
            if table is None:
                continue
            try:
                changes = warehouse_of(table.data_source).type_changes(table_spec_of(table))
            except Exception as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                problems.append(
                    Problem(f"topics[{index}].table", f"warehouse not readable: {reason}")
                )
                continue
            columns = [m.column for m in table.mappings]
            for change in changes:
                if not change.compatible:
                    at = columns.index(change.column)
                    path = f"topics[{index}].table.mappings[{at}].type"
                    problems.append(Problem(path, change.message()))
    return problems


def plan_migration(document: RegistryDocument, url_for: UrlFor) -> list[PlannedStep]:
    """Plan the ALTER statements that give every live table the registry's column types."""
    planned: list[PlannedStep] = []
    with _warehouses(url_for) as warehouse_of:
        for topic in document.topics:
            if topic.table is None:
                continue
            warehouse = warehouse_of(topic.table.data_source)
            for step in warehouse.plan_migration(table_spec_of(topic.table)):
                planned.append(PlannedStep(topic.table.data_source, step))
    return planned


def apply_migration(steps: list[PlannedStep], url_for: UrlFor) -> None:
    """Apply planned steps, one transaction per warehouse (all or nothing there)."""
    by_source: dict[str, list[MigrationStep]] = {}
    for planned in steps:
        by_source.setdefault(planned.data_source, []).append(planned.step)
    with _warehouses(url_for, read_only=False) as warehouse_of:
        for data_source, group in by_source.items():
            warehouse_of(data_source).apply_migration(group)
