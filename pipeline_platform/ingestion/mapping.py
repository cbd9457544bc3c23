"""Compiled field mappings: a TableConfig turned once into a fast row builder.

:func:`compile_mapping` generates one small Python function per table whose body walks every
source path with direct subscripts and converts every value with an inline fast path (``type(v)
is str`` and so on), falling back to a converter function only for the unusual cases. The
builder returns either a tuple of column values or a dead-letter reason string naming the
column, so the caller needs no exception handling per message.

Values produced (the same for PostgreSQL and SQLite; the SQL layer adapts them):

========== =============================================================================
type       Python value
========== =============================================================================
string     ``str`` (numbers and booleans are rendered, objects/arrays as JSON text)
integer    ``int`` in the signed 64-bit range; integral floats and digit strings accepted
float      ``float`` (ints and numeric strings accepted)
boolean    ``bool``; JSON ``true``/``false`` only
timestamp  timezone-aware ``datetime``: ISO 8601 with or without offset (naive = UTC), or
           epoch seconds / milliseconds as a number (``abs(n) >= 1e11`` means milliseconds)
date       ``date`` from ``YYYY-MM-DD``
json       JSON text (``str``) of the value
uuid       ``uuid.UUID``
========== =============================================================================

A JSON ``null`` counts as missing: an optional column then takes its default or NULL, a
required one (and every upsert-key column) dead-letters the message.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from pipeline_platform.names import require_sql_identifier, split_source_path
from pipeline_platform.registry.document import FieldMapping, TableConfig

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_fromtimestamp = datetime.fromtimestamp
_MS_THRESHOLD = 1e11
_INT_TEXT = re.compile(r"^\s*[+-]?\d{1,19}\s*$")

#: What a compiled builder returns: the row, or a dead-letter reason.
RowOrReason = tuple[Any, ...] | str


class ConversionError(ValueError):
    """A value that does not convert to its column type."""


def _render_number(value: Any) -> str:
    return orjson.dumps(value).decode()


def convert_string(value: Any) -> str:
    """Convert a JSON value to text (numbers and booleans rendered, containers as JSON)."""
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = _render_number(value)
    elif isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
    else:
        raise ConversionError(f"cannot convert {type(value).__name__} to string")
    if "\x00" in text:
        raise ConversionError("text contains a NUL character")
    return text


def convert_integer(value: Any) -> int:
    """Convert to a signed 64-bit integer; refuse fractions, booleans and non-numeric text."""
    if type(value) is int:
        result = value
    elif isinstance(value, bool):
        raise ConversionError(f"expected an integer, got boolean {value!r}")
    elif isinstance(value, float):
        if not value.is_integer():
            raise ConversionError(f"expected an integer, got {value!r}")
        result = int(value)
    elif isinstance(value, str) and _INT_TEXT.match(value):
        result = int(value)
    else:
        raise ConversionError(f"expected an integer, got {_describe(value)}")
    if not INT64_MIN <= result <= INT64_MAX:
        raise ConversionError(f"integer {result} is out of the 64-bit range")
    return result


def convert_float(value: Any) -> float:
    """Convert to a finite float; ints and numeric text are accepted, booleans refused."""
    if isinstance(value, bool):
        raise ConversionError(f"expected a number, got boolean {value!r}")
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError as error:
            raise ConversionError("number is too large for a float") from error
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError as error:
            raise ConversionError(f"expected a number, got {_describe(value)}") from error
    else:
        raise ConversionError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(result):
        raise ConversionError(f"expected a finite number, got {value!r}")
    return result


def convert_boolean(value: Any) -> bool:
    """Accept only JSON ``true`` and ``false``."""
    if isinstance(value, bool):
        return value
    raise ConversionError(f"expected true or false, got {_describe(value)}")


def convert_timestamp(value: Any) -> datetime:
    """Convert ISO 8601 text (naive = UTC) or epoch seconds/milliseconds to an aware datetime."""
    if type(value) is str:
        try:
            result = datetime.fromisoformat(value)
        except ValueError as error:
            raise ConversionError(f"not an ISO 8601 timestamp: {_describe(value)}") from error
        if result.tzinfo is None:
            return result.replace(tzinfo=UTC)
        return result
    kind = type(value)  # exact types: a bool is not a number here (and a tuple check is cheap)
    if kind is not int and kind is not float:
        raise ConversionError(f"expected a timestamp, got {_describe(value)}")
    seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
    try:
        return _fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise ConversionError(f"epoch timestamp {value!r} is out of range") from error


def convert_date(value: Any) -> date:
    """Convert ``YYYY-MM-DD`` text to a date."""
    if type(value) is str:
        try:
            return date.fromisoformat(value)
        except ValueError as error:
            raise ConversionError(f"not an ISO 8601 date: {_describe(value)}") from error
    raise ConversionError(f"expected a date string, got {_describe(value)}")


def convert_json(value: Any) -> str:
    """Render any JSON value as JSON text (refusing ``\\u0000``, which jsonb cannot hold)."""
    text = orjson.dumps(value).decode()
    if "\\u0000" in text:
        raise ConversionError("JSON contains \\u0000, which jsonb cannot store")
    return text


def convert_uuid(value: Any) -> uuid.UUID:
    """Convert UUID text to a UUID."""
    if type(value) is str:
        try:
            return uuid.UUID(value)
        except ValueError as error:
            raise ConversionError(f"not a UUID: {_describe(value)}") from error
    raise ConversionError(f"expected a UUID string, got {_describe(value)}")


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": convert_string,
    "integer": convert_integer,
    "float": convert_float,
    "boolean": convert_boolean,
    "timestamp": convert_timestamp,
    "date": convert_date,
    "json": convert_json,
    "uuid": convert_uuid,
}

# Inline fast paths: when this holds, the value is already in final form (no call needed).
_FAST_PATH = {
    "string": "type({v}) is str and '\\x00' not in {v}",
    "integer": "type({v}) is int and -9223372036854775808 <= {v} <= 9223372036854775807",
    "float": "type({v}) is float",
    "boolean": "type({v}) is bool",
}


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


@dataclass(frozen=True)
class CompiledMapping:
    """A table's mappings compiled into a row builder.

    Attributes:
        columns: Column names in row order.
        types: Field type of each column, in row order.
        key_columns: The upsert key columns (empty for append only).
        key_indexes: Positions of the key columns in a row.
        build: ``build(document) -> tuple | str``: the row, or a dead-letter reason.
        source: The generated Python source (for debugging).
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]
    key_columns: tuple[str, ...]
    key_indexes: tuple[int, ...]
    build: Callable[[Any], RowOrReason]
    source: str


def compile_mapping(table: TableConfig) -> CompiledMapping:
    """Compile a table's field mappings into a fast row builder.

    Args:
        table: The target table configuration.

    Returns:
        The compiled mapping. Upsert-key and time columns are treated as required (a NULL there
        cannot be stored in a primary key).

    Raises:
        ValueError: A column name is not a safe identifier, a key column is not mapped, a
            column is mapped twice, or a default does not convert to its type.
    """
    mappings: Sequence[FieldMapping] = table.mappings
    columns = tuple(require_sql_identifier(m.column) for m in mappings)
    if len(set(columns)) != len(columns):
        raise ValueError(f"table {table.name}: a column is mapped more than once")
    for key in table.upsert_key:
        if key not in columns:
            raise ValueError(f"table {table.name}: upsert key column {key!r} is not mapped")
    must_have = set(table.upsert_key)
    namespace: dict[str, Any] = {"ConversionError": ConversionError, "_EMPTY": _EMPTY}
    lines = ["def build(d):"]
    walker = _PathWalker(lines)
    for index, mapping in enumerate(mappings):
        node = walker.node(split_source_path(mapping.source))
        lines.extend(_field_lines(index, mapping, node, mapping.column in must_have, namespace))
    lines.append(f"    return ({''.join(f'v{i}, ' for i in range(len(mappings)))})")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<mapping {table.name}>", "exec"), namespace)
    return CompiledMapping(
        columns=columns,
        types=tuple(m.type for m in mappings),
        key_columns=tuple(table.upsert_key),
        key_indexes=tuple(columns.index(k) for k in table.upsert_key),
        build=namespace["build"],
        source=source,
    )


_EMPTY: dict[str, Any] = {}


class _PathWalker:
    """Emits each distinct path prefix once: ``payload.a`` and ``payload.b`` share ``payload``.

    Intermediate objects that are not dicts become an empty dict, lists are only indexed when
    they are lists (a string is indexable too) and long enough, so a missing or mistyped
    branch yields None without exceptions.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.names: dict[tuple[str | int, ...], str] = {(): "d"}

    def node(self, path: tuple[str | int, ...]) -> str:
        """Return the variable holding the value at ``path`` (None when absent)."""
        if path in self.names:
            return self.names[path]
        parent = self.container(path[:-1], path[-1])
        name = f"n{len(self.names)}"
        step = path[-1]
        if isinstance(step, int):
            self.lines.append(f"    {name} = {parent}[{step}] if len({parent}) > {step} else None")
        else:
            self.lines.append(f"    {name} = {parent}.get({step!r})")
        self.names[path] = name
        return name

    def container(self, path: tuple[str | int, ...], step: str | int) -> str:
        """Return a variable holding the value at ``path`` coerced to what ``step`` indexes."""
        kind = "list" if isinstance(step, int) else "dict"
        key = (*path, f"<{kind}>")
        if key in self.names:
            return self.names[key]
        if not path and kind == "dict":
            return "d"  # the document is known to be an object
        value = self.node(path)
        name = f"c{len(self.names)}"
        fallback = "()" if kind == "list" else "_EMPTY"
        self.lines.append(f"    {name} = {value} if type({value}) is {kind} else {fallback}")
        self.names[key] = name
        return name


def _field_lines(
    index: int, mapping: FieldMapping, node: str, key_column: bool, namespace: dict[str, Any]
) -> list[str]:
    v = f"v{index}"
    converter = CONVERTERS[mapping.type]
    namespace[f"conv{index}"] = converter
    lines = [f"    {v} = {node}"]
    required = mapping.required or key_column
    what = f"column {mapping.column} (source {mapping.source})"
    lines.append(f"    if {v} is None:")
    if mapping.default is not None:
        try:
            default = converter(mapping.default)
        except ConversionError as error:
            raise ValueError(f"{what}: default {mapping.default!r}: {error}") from error
        namespace[f"default{index}"] = default
        lines.append(f"        {v} = default{index}")
    elif required:
        lines.append(f"        return {f'missing required field: {what}'!r}")
    else:
        lines.append("        pass")
    fast = _FAST_PATH.get(mapping.type)
    if fast:
        lines.append(f"    elif not ({fast.format(v=v)}):")
    else:
        lines.append("    else:")
    lines.append("        try:")
    lines.append(f"            {v} = conv{index}({v})")
    lines.append("        except ConversionError as e:")
    lines.append(f"            return {what + ': '!r} + str(e)")
    return lines
