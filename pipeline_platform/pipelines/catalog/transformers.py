"""Transformer modules: each reshapes whole chunks (pandas), never row by row in Python."""

from __future__ import annotations

from typing import Any

from pipeline_platform.pipelines.catalog.spec import (
    COLUMNS,
    IDENT,
    LOGICAL_TYPES,
    ModuleSpec,
    obj,
)

FILTER_OPS = (
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null", "between", "like",
)  # fmt: skip
AGGREGATES = ("count", "sum", "min", "max", "avg", "mean")
_SCALAR = {"type": ["string", "number", "boolean"]}

_CONDITION: dict[str, Any] = {
    "type": "object",
    "properties": {"column": IDENT, "op": {"enum": list(FILTER_OPS)}, "value": {}},
    "required": ["column", "op"],
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"op": {"enum": ["in", "not_in"]}}},
            "then": {
                "required": ["value"],
                "properties": {"value": {"type": "array", "items": _SCALAR, "minItems": 1}},
            },
        },
        {
            "if": {"properties": {"op": {"const": "between"}}},
            "then": {
                "required": ["value"],
                "properties": {
                    "value": {"type": "array", "items": _SCALAR, "minItems": 2, "maxItems": 2}
                },
            },
        },
        {
            "if": {"properties": {"op": {"enum": ["eq", "ne", "lt", "le", "gt", "ge"]}}},
            "then": {"required": ["value"], "properties": {"value": _SCALAR}},
        },
        {
            "if": {"properties": {"op": {"const": "like"}}},
            "then": {"required": ["value"], "properties": {"value": {"type": "string"}}},
        },
        {
            "if": {"properties": {"op": {"enum": ["is_null", "not_null"]}}},
            "then": {"not": {"required": ["value"]}},
        },
    ],
}
_FILTER: dict[str, Any] = {
    "$defs": {
        "condition": _CONDITION,
        "group": {
            "type": "object",
            "properties": {
                "all": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1},
                "any": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1},
            },
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
        },
        "node": {
            "if": {"required": ["column"]},
            "then": {"$ref": "#/$defs/condition"},
            "else": {"$ref": "#/$defs/group"},
        },
    },
    "$ref": "#/$defs/node",
}

TRANSFORMERS: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "filter_rows",
        "transformer",
        "Keep the rows that satisfy structured conditions (eq, ne, lt, le, gt, ge, in, not_in, "
        "is_null, not_null, between, like) combined with all / any. A comparison with NULL is "
        "false, as in SQL; pushed down into a SQL source query where exact.",
        _FILTER,
        display_name="Filter rows",
        category="rows",
        icon="filter_alt",
        tags=("filter", "where"),
        input_schema={"columns": "every config column"},
        output_schema={"columns": "unchanged"},
    ),
    ModuleSpec(
        "select_columns",
        "transformer",
        "Keep only the listed columns (in that order), optionally renaming them.",
        obj(
            {"columns": COLUMNS, "rename": {"type": "object", "additionalProperties": IDENT}},
            ["columns"],
        ),
        display_name="Select columns",
        category="columns",
        icon="view_week",
        tags=("select", "project"),
        input_schema={"columns": "config.columns"},
        output_schema={"columns": "config.columns, renamed"},
    ),
    ModuleSpec(
        "rename_columns",
        "transformer",
        "Rename columns (old name → new name); other columns pass through.",
        obj(
            {
                "mapping": {
                    "type": "object",
                    "propertyNames": IDENT,
                    "additionalProperties": IDENT,
                    "minProperties": 1,
                }
            },
            ["mapping"],
        ),
        display_name="Rename columns",
        category="columns",
        icon="edit",
        tags=("rename",),
        input_schema={"columns": "keys of config.mapping"},
    ),
    ModuleSpec(
        "cast_columns",
        "transformer",
        "Convert columns to logical types; a value that does not convert becomes NULL and the row "
        "is counted as rejected when on_error is reject.",
        obj(
            {
                "types": {
                    "type": "object",
                    "propertyNames": IDENT,
                    "additionalProperties": {"enum": list(LOGICAL_TYPES)},
                    "minProperties": 1,
                },
                "on_error": {"enum": ["null", "reject"]},
            },
            ["types"],
        ),
        display_name="Cast columns",
        category="columns",
        icon="swap_horiz",
        tags=("cast", "types"),
        input_schema={"columns": "keys of config.types"},
    ),
    ModuleSpec(
        "derive_column",
        "transformer",
        "Add (or replace) a column computed from an expression over other columns: arithmetic, "
        "comparisons, and/or/not and functions such as lower, upper, length, abs, round, "
        "coalesce, concat, if_else, year, month, day, hour (a parsed grammar, never eval).",
        obj(
            {"column": IDENT, "expression": {"type": "string", "minLength": 1, "maxLength": 2000}},
            ["column", "expression"],
        ),
        display_name="Derive column",
        category="columns",
        icon="function",
        tags=("expression", "compute"),
        input_schema={"columns": "the names used in config.expression"},
        output_schema={"columns": "input plus config.column"},
    ),
    ModuleSpec(
        "deduplicate",
        "transformer",
        "Keep one row per key (the first or last seen in the run).",
        obj({"key": COLUMNS, "keep": {"enum": ["first", "last"]}}, ["key"]),
        display_name="Deduplicate",
        category="rows",
        icon="layers_clear",
        tags=("distinct", "dedupe"),
        input_schema={"columns": "config.key"},
    ),
    ModuleSpec(
        "aggregate",
        "transformer",
        "Group rows by columns and aggregate others (count, sum, min, max, avg); aggregated "
        "chunk by chunk, so memory grows with the groups, not the rows.",
        obj(
            {
                "group_by": COLUMNS,
                "aggregations": {
                    "type": "object",
                    "propertyNames": IDENT,
                    "additionalProperties": {"enum": list(AGGREGATES)},
                    "minProperties": 1,
                },
                "count_as": IDENT,
            },
            ["group_by", "aggregations"],
        ),
        display_name="Aggregate",
        category="rows",
        icon="functions",
        tags=("group by", "sum", "count"),
        input_schema={"columns": "config.group_by and keys of config.aggregations"},
        output_schema={"columns": "group_by, aggregated columns, count_as"},
    ),
    ModuleSpec(
        "join",
        "transformer",
        "Join two inputs on key columns (inner or left); `right` names the upstream node whose "
        "rows are looked up. Clashing right-hand column names get the suffix _right.",
        obj({"right": IDENT, "on": COLUMNS, "how": {"enum": ["inner", "left"]}}, ["right", "on"]),
        display_name="Join",
        category="combine",
        icon="join",
        tags=("join", "lookup", "merge"),
        input_schema={"columns": "config.on on both inputs"},
        inputs=2,
    ),
    ModuleSpec(
        "mask_columns",
        "transformer",
        "Hide values: sha256 hex digest (with an optional salt from an environment variable), "
        "or keep only the last N characters, or replace by a fixed text.",
        obj(
            {
                "columns": COLUMNS,
                "method": {"enum": ["hash", "redact", "keep_last"]},
                "keep": {"type": "integer", "minimum": 0, "maximum": 64},
                "salt_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                "replacement": {"type": "string", "maxLength": 100},
            },
            ["columns"],
        ),
        display_name="Hash or mask",
        category="columns",
        icon="visibility_off",
        tags=("privacy", "pii", "hash"),
        input_schema={"columns": "config.columns"},
    ),
    ModuleSpec(
        "fill_nulls",
        "transformer",
        "Replace NULLs in columns by fixed values.",
        obj(
            {
                "values": {
                    "type": "object",
                    "propertyNames": IDENT,
                    "additionalProperties": _SCALAR,
                    "minProperties": 1,
                }
            },
            ["values"],
        ),
        display_name="Fill nulls",
        category="columns",
        icon="format_color_fill",
        tags=("nulls", "default"),
        input_schema={"columns": "keys of config.values"},
    ),
    ModuleSpec(
        "sort_rows",
        "transformer",
        "Sort all rows of the run by columns (holds the run's rows in memory).",
        obj({"by": COLUMNS, "descending": {"type": "boolean"}}, ["by"]),
        display_name="Sort",
        category="rows",
        icon="sort",
        tags=("order by",),
        input_schema={"columns": "config.by"},
    ),
    ModuleSpec(
        "limit_rows",
        "transformer",
        "Keep the first N rows.",
        obj({"count": {"type": "integer", "minimum": 0}}, ["count"]),
        display_name="Limit",
        category="rows",
        icon="vertical_align_top",
        tags=("limit", "head"),
    ),
)
