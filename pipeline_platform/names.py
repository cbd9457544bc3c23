"""Name rules shared by the registry, the factory and the SQL writers.

Registry values never reach SQL as raw text: every table and column name is checked against
:data:`SQL_IDENTIFIER` before use and then quoted by the SQL layer anyway.
"""

from __future__ import annotations

import re

SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQL_IDENTIFIER_RULE = (
    "not a safe SQL identifier "
    "(lowercase letters, digits and _, at most 63, not starting with a digit)"
)

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
TOPIC_NAME_RULE = "not a valid Kafka topic name (letters, digits, '.', '_', '-', at most 249)"

ENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENTITY_NAME_RULE = (
    "not a valid name (letters, digits, '.', '_', '-', starting with a letter or digit)"
)

ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ENV_VAR_RULE = "not an environment variable name (uppercase letters, digits and _)"

# A source path: dotted keys, each optionally followed by [i] indexes, e.g. payload.tags[0].
SOURCE_PATH = re.compile(r"^[A-Za-z_$@][\w$@-]*(\[\d+\])*(\.[A-Za-z_$@][\w$@-]*(\[\d+\])*)*$")
SOURCE_PATH_RULE = "not a source path (dotted keys with optional [i] indexes, e.g. payload.tags[0])"

_SOURCE_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def is_sql_identifier(name: str) -> bool:
    """Return True when ``name`` is a safe, unquoted-compatible SQL identifier."""
    return bool(SQL_IDENTIFIER.match(name))


def require_sql_identifier(name: str) -> str:
    """Return ``name`` unchanged, or raise ValueError when it is not a safe SQL identifier."""
    if not is_sql_identifier(name):
        raise ValueError(f"{name!r} is {SQL_IDENTIFIER_RULE}")
    return name


def split_source_path(path: str) -> tuple[str | int, ...]:
    """Split ``payload.tags[0]`` into ``("payload", "tags", 0)``.

    Args:
        path: A source path that matches :data:`SOURCE_PATH`.

    Returns:
        The keys (str) and list indexes (int) to walk, in order.
    """
    if not SOURCE_PATH.match(path):
        raise ValueError(f"{path!r} is {SOURCE_PATH_RULE}")
    return tuple(key if key else int(index) for key, index in _SOURCE_PART.findall(path))
