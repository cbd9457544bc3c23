"""Topic JSON Schemas: validated by the draft they declare, with jsonschema-rs.

The draft comes from ``$schema`` (draft 4, 6, 7, 2019-09 or 2020-12); a schema without
``$schema`` is read as **draft 2020-12**. One compiled validator per schema and run. Remote
references are never fetched (``offline``): a schema must be self-contained, and one with an
``http(s)://`` ``$ref`` outside itself is refused at ``registry validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs

#: Raised by a compiled validator on an invalid document (``.message`` is one line).
SchemaViolation = jsonschema_rs.ValidationError

Validator = Callable[[Any], Any]


def compile_validator(schema: dict[str, Any] | None) -> Validator | None:
    """Compile a topic's JSON Schema once; None when there is no schema.

    Args:
        schema: The topic's JSON Schema, or None.

    Returns:
        A function raising :data:`SchemaViolation` on an invalid document.

    Raises:
        ValueError: The schema is not valid for its draft (one line).
    """
    if not schema:
        return None
    problem = schema_problem(schema)
    if problem is not None:
        raise ValueError(f"not a valid JSON Schema: {problem}")
    validate: Validator = jsonschema_rs.validator_for(schema, offline=True).validate
    return validate


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Return why ``schema`` is not valid for the draft it declares (one line), or None."""
    try:
        jsonschema_rs.meta.validate(schema)
        jsonschema_rs.validator_for(schema, offline=True)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        message = getattr(error, "message", None) or str(error)
        return message.splitlines()[0] if message else type(error).__name__
    return None
