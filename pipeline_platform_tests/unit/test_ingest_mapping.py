"""Compiled mappings and decoding: every type, paths, defaults and dead-letter reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from pipeline_platform.ingestion.decode import (
    DecodeOptions,
    compile_validator,
    decode_message,
    transform_batch,
)
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.registry.document import TableConfig


def table(*mappings: dict[str, Any], key: tuple[str, ...] = ()) -> TableConfig:
    return TableConfig.model_validate(
        {"name": "t", "upsert_key": list(key), "mappings": list(mappings)}
    )


def one(kind: str, value: Any, **extra: Any) -> Any:
    """Map ``{"v": value}`` through a single column of type ``kind``."""
    compiled = compile_mapping(table({"source": "v", "column": "c", "type": kind, **extra}))
    result = compiled.build({"v": value} if value is not _ABSENT else {})
    return result[0] if isinstance(result, tuple) else result


_ABSENT = object()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (5, "5"), (1.5, "1.5"), (True, "true"), ({"a": 1}, '{"a":1}'), ([1], "[1]")],
)
def test_string(value: Any, expected: str) -> None:
    assert one("string", value) == expected


@pytest.mark.parametrize(("value", "expected"), [(5, 5), (2.0, 2), ("42", 42), (" -7 ", -7)])
def test_integer_accepts(value: Any, expected: int) -> None:
    assert one("integer", value) == expected


@pytest.mark.parametrize("value", [1.5, "abc", True, "1.5", 2**63, [1], {"a": 1}])
def test_integer_refuses(value: Any) -> None:
    reason = one("integer", value)
    assert isinstance(reason, str) and "column c" in reason


@pytest.mark.parametrize(("value", "expected"), [(1.5, 1.5), (3, 3.0), ("2.25", 2.25)])
def test_float(value: Any, expected: float) -> None:
    assert one("float", value) == expected


@pytest.mark.parametrize("value", ["x", True, "nan", [1.0]])
def test_float_refuses(value: Any) -> None:
    assert "column c" in one("float", value)


def test_boolean_is_strict() -> None:
    assert one("boolean", True) is True
    assert one("boolean", False) is False
    for value in (1, 0, "true", "yes"):
        assert "expected true or false" in one("boolean", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00.250", datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        (
            "2024-05-01T14:00:00+02:00",
            datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
        ),
        (1_714_564_800, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (1_714_564_800_500, datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
        (1_714_564_800.25, datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_timestamp(value: Any, expected: datetime) -> None:
    result = one("timestamp", value)
    assert result == expected
    assert result.tzinfo is not None


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00", True, {"t": 1}])
def test_timestamp_refuses(value: Any) -> None:
    assert "column c" in one("timestamp", value)


def test_date_uuid_json() -> None:
    assert one("date", "2024-02-29") == date(2024, 2, 29)
    assert "not an ISO 8601 date" in one("date", "2023-02-29")
    assert "expected a date" in one("date", 20240101)
    ident = uuid.uuid4()
    assert one("uuid", str(ident)) == ident
    assert "not a UUID" in one("uuid", "1234")
    assert orjson.loads(one("json", {"a": [1, {"b": None}]})) == {"a": [1, {"b": None}]}
    assert one("json", 3) == "3"
    assert "jsonb" in one("json", {"a": "\x00"})


def test_nul_in_text_is_refused() -> None:
    assert "NUL" in one("string", "a\x00b")


def test_missing_optional_default_and_null() -> None:
    assert one("integer", _ABSENT) is None
    assert one("integer", None) is None
    assert one("integer", _ABSENT, default=16000) == 16000
    assert one("string", None, default="none") == "none"


def test_missing_required_names_the_column() -> None:
    reason = one("string", _ABSENT, required=True)
    assert reason == "missing required field: column c (source v)"


def test_bad_default_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="default"):
        compile_mapping(table({"source": "v", "column": "c", "type": "integer", "default": "x"}))


def test_nested_paths_and_indexes() -> None:
    compiled = compile_mapping(
        table(
            {"source": "payload.ssid", "column": "ssid", "type": "string"},
            {"source": "payload.tags[0]", "column": "first", "type": "string", "default": "none"},
            {"source": "payload.tags[1]", "column": "second", "type": "string"},
            {"source": "payload.nested[0].x", "column": "x", "type": "integer"},
            {"source": "payload", "column": "payload", "type": "json"},
        )
    )
    document = {"payload": {"ssid": "n", "tags": ["a", "b"], "nested": [{"x": 3}]}}
    row = compiled.build(document)
    assert row[:4] == ("n", "a", "b", 3)
    assert orjson.loads(row[4]) == document["payload"]
    assert compiled.build({"payload": {"tags": []}})[:4] == (None, "none", None, None)
    # A string is not a list; a list is not an object.
    assert compiled.build({"payload": {"tags": "ab", "nested": {"0": 1}}})[:4] == (
        None,
        "none",
        None,
        None,
    )
    assert compiled.build({"payload": [1, 2]})[:4] == (None, "none", None, None)


def test_key_columns_are_required() -> None:
    compiled = compile_mapping(
        table({"source": "id", "column": "id", "type": "string"}, key=("id",))
    )
    assert compiled.build({})[:7] == "missing"


def test_decode_reasons() -> None:
    options = DecodeOptions(max_message_bytes=100)
    validator = compile_validator({"type": "object", "required": ["id"]})
    cases = {
        None: "empty message",
        b"": "empty message",
        b"{": "malformed JSON",
        b"\xff\xfe": "not UTF-8",
        b"[1,2]": "not a JSON object",
        b'"text"': "not a JSON object",
        b"{}": "schema violation",
        b'{"id": "' + b"x" * 200 + b'"}': "oversized message",
    }
    for value, prefix in cases.items():
        result = decode_message(value, None, validator, options)
        assert isinstance(result, str) and result.startswith(prefix), (value, result)
    assert decode_message(b'{"id": 1}', None, validator, options) == {"id": 1}
    keyed = DecodeOptions(key_required=True)
    assert decode_message(b'{"id": 1}', None, None, keyed).startswith("missing key")
    assert decode_message(b'{"id": 1}', b"k", None, keyed) == {"id": 1}


def test_transform_batch_dedupes_last_wins_and_tracks_offsets() -> None:
    compiled = compile_mapping(
        table(
            {"source": "id", "column": "id", "type": "string"},
            {"source": "n", "column": "n", "type": "integer"},
            key=("id",),
        )
    )
    messages = [
        (0, 10, None, b'{"id": "a", "n": 1}'),
        (1, 5, None, b'{"id": "b", "n": 1}'),
        (0, 11, None, b'{"id": "a", "n": 2}'),
        (0, 12, None, b"oops"),
        (1, 6, None, b'{"id": "b", "n": "x"}'),
    ]
    batch = transform_batch(messages, compiled, None, DecodeOptions())
    assert sorted(batch.rows) == [("a", 2), ("b", 1)]
    assert [(d.partition, d.offset) for d in batch.dead_letters] == [(0, 12), (1, 6)]
    assert batch.last_offsets == {0: 12, 1: 6}
    assert batch.messages == 5
