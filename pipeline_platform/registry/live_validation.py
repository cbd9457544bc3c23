"""Validate the live registry in the database with the rules of ``registry validate``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline_platform.registry import queries
from pipeline_platform.registry.document import record_to_data
from pipeline_platform.registry.live import RegistryUnavailable, one_line
from pipeline_platform.registry.store import read_document_and_invalid_rows
from pipeline_platform.registry.validation import Problem, validate_data


def validate_live(engine: Engine) -> dict[str, Any]:
    """Validate the registry as stored, as if it were exported and checked as a file.

    Rows that no longer parse (edited by hand in SQL, say) are reported at the entry path of
    their entity (``topics[name].table.mappings.2.type``); the rest goes through the file
    validator, so paths are those of ``registry export`` output.

    Returns:
        ``{"valid", "problems": [{"path", "reason"}], "statistics": {"topics", "tables",
        "mappings", "flows", "stages"}}``.

    Raises:
        RegistryUnavailable: when the registry cannot be read.
    """
    try:
        document, invalid = read_document_and_invalid_rows(engine)
    except SQLAlchemyError as error:
        raise RegistryUnavailable(f"registry unavailable: {one_line(error)}") from None
    problems: list[Problem] = []
    for kind, reasons in invalid.items():
        for name, reason in sorted(reasons.items()):
            where, _, why = reason.partition(": ")
            path = f"{kind}[{name}]" + (f".{where}" if why else "")
            problems.append(Problem(path, why or reason))
    _, found = validate_data(record_to_data(document))
    problems.extend(found)
    return {
        "valid": not problems,
        "problems": [{"path": p.path, "reason": p.reason} for p in problems],
        "statistics": queries.validation_statistics(document),
    }
