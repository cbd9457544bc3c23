"""The one identifier-quoting function of the project.

Registry values never reach SQL as raw text: a name is first checked against the project's
identifier rule (:func:`pipeline_platform.names.require_sql_identifier`) and then quoted by
SQLAlchemy's identifier preparer (the same double-quote quoting PostgreSQL and SQLite use), so
validation and quoting both come from one place.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.sql.compiler import IdentifierPreparer

from pipeline_platform.names import require_sql_identifier


@lru_cache(maxsize=1)
def _preparer() -> IdentifierPreparer:
    return IdentifierPreparer(DefaultDialect())


@lru_cache(maxsize=4096)
def quote(name: str) -> str:
    """Validate ``name`` as a safe SQL identifier and return it quoted.

    Args:
        name: A table, schema or column name from the registry.

    Returns:
        The double-quoted identifier.

    Raises:
        ValueError: ``name`` is not a safe SQL identifier.
    """
    return _preparer().quote_identifier(require_sql_identifier(name))


def qualified_name(name: str, schema: str | None = None) -> str:
    """Return ``"schema"."name"`` (or ``"name"`` without a schema), validated and quoted."""
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)
