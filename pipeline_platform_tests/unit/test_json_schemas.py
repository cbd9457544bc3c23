"""Topic schemas are validated by their declared draft (default 2020-12)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_platform.json_schemas import SchemaViolation, compile_validator, schema_problem

DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"


def verdict(schema: dict[str, Any], document: Any) -> bool:
    validate = compile_validator(schema)
    assert validate is not None
    try:
        validate(document)
    except SchemaViolation:
        return False
    return True


@pytest.mark.parametrize("declared", [{}, {"$schema": DRAFT2020}])
def test_draft_2020_12_keywords(declared: dict[str, str]) -> None:
    prefix = {**declared, "prefixItems": [{"type": "integer"}], "items": False}
    assert verdict(prefix, [1])
    assert not verdict(prefix, ["a"])
    assert not verdict(prefix, [1, 2])  # items: false after the prefix
    required = {**declared, "dependentRequired": {"a": ["b"]}}
    assert verdict(required, {"a": 1, "b": 2}) and not verdict(required, {"a": 1})
    unevaluated = {
        **declared,
        "allOf": [{"properties": {"a": {}}}],
        "unevaluatedProperties": False,
    }
    assert verdict(unevaluated, {"a": 1}) and not verdict(unevaluated, {"a": 1, "b": 2})
    dynamic = {
        **declared,
        "$id": "https://example.com/tree",
        "$dynamicAnchor": "node",
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$dynamicRef": "#node"}}},
        "required": ["v"],
    }
    assert verdict(dynamic, {"v": 1, "children": [{"v": 2}]})
    assert not verdict(dynamic, {"v": 1, "children": [{"x": 2}]})


def test_draft_7_keywords() -> None:
    items = {"$schema": DRAFT7, "items": [{"type": "integer"}], "additionalItems": False}
    assert verdict(items, [1]) and not verdict(items, [1, 2]) and not verdict(items, ["a"])
    dependencies = {"$schema": DRAFT7, "dependencies": {"a": ["b"]}}
    assert verdict(dependencies, {"a": 1, "b": 1}) and not verdict(dependencies, {"a": 1})
    # In draft 7, prefixItems and dependentRequired are unknown keywords: ignored.
    assert verdict({"$schema": DRAFT7, "prefixItems": [{"type": "integer"}]}, ["a"])
    assert verdict({"$schema": DRAFT7, "dependentRequired": {"a": ["b"]}}, {"a": 1})
    # In draft 2020-12, array-form items is not allowed.
    assert schema_problem({"items": [{"type": "integer"}]}) is not None


def test_invalid_schema_is_refused_in_one_line() -> None:
    problem = schema_problem({"type": "nope"})
    assert problem is not None and "\n" not in problem
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        compile_validator({"type": 12})
    assert schema_problem({"type": "object", "required": ["a"]}) is None
