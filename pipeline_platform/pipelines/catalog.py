"""The built-in module catalog: extractors, transformers and loaders with config JSON Schemas.

``registry init`` writes the catalog into the ``modules`` table; validation checks every pipeline
node's config against its module's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ModuleKind = Literal["extractor", "transformer", "loader"]

_IDENT = {"type": "string", "pattern": r"^[a-z_][a-z0-9_]{0,62}$"}
_COLUMNS = {"type": "array", "items": _IDENT, "minItems": 1, "uniqueItems": True}


@dataclass(frozen=True)
class ModuleSpec:
    """A module of the catalog.

    Attributes:
        name: Module name used by pipeline nodes.
        kind: ``extractor``, ``transformer`` or ``loader``.
        description: What the module does.
        config_schema: JSON Schema of the node ``config``.
    """

    name: str
    kind: ModuleKind
    description: str
    config_schema: dict[str, Any]


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


BUILTIN_MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "sql_table_extractor",
        "extractor",
        "Read a table of a data source, optionally only rows newer than a watermark column.",
        _object(
            {
                "data_source": _IDENT,
                "schema": _IDENT,
                "table": _IDENT,
                "columns": _COLUMNS,
                "incremental_column": _IDENT,
            },
            ["data_source", "table"],
        ),
    ),
    ModuleSpec(
        "filter_rows",
        "transformer",
        "Keep the rows whose column compares true with a value.",
        _object(
            {
                "column": _IDENT,
                "op": {"enum": ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_null"]},
                "value": {},
            },
            ["column", "op"],
        ),
    ),
    ModuleSpec(
        "select_columns",
        "transformer",
        "Keep only the listed columns, optionally renaming them.",
        _object(
            {
                "columns": _COLUMNS,
                "rename": {"type": "object", "additionalProperties": _IDENT},
            },
            ["columns"],
        ),
    ),
    ModuleSpec(
        "aggregate",
        "transformer",
        "Group rows by columns and aggregate others (sum, count, min, max, mean).",
        _object(
            {
                "group_by": _COLUMNS,
                "aggregations": {
                    "type": "object",
                    "additionalProperties": {"enum": ["sum", "count", "min", "max", "mean"]},
                    "minProperties": 1,
                },
            },
            ["group_by", "aggregations"],
        ),
    ),
    ModuleSpec(
        "sql_table_loader",
        "loader",
        "Write rows into a table of a data source: append, replace or upsert by key.",
        {
            **_object(
                {
                    "data_source": _IDENT,
                    "schema": _IDENT,
                    "table": _IDENT,
                    "mode": {"enum": ["append", "replace", "upsert"]},
                    "key": _COLUMNS,
                },
                ["data_source", "table"],
            ),
            "if": {"properties": {"mode": {"const": "upsert"}}, "required": ["mode"]},
            "then": {"required": ["key"]},
        },
    ),
)

MODULES_BY_NAME: dict[str, ModuleSpec] = {module.name: module for module in BUILTIN_MODULES}
