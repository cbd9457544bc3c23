"""Every transformer module on a small table, expected output worked out by hand."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import pytest

from pipeline_platform.pipelines.expressions import ExpressionError, parse_expression
from pipeline_platform.pipelines.transforms import build_step

ORDERS = pd.DataFrame(
    {
        "id": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
        "status": pd.array(["paid", "open", "paid", None, "void"], dtype="string"),
        "amount": [10.0, 3.5, None, 7.0, 1.0],
        "city": pd.array(["Oslo", "Rome", "Oslo", "Rome", None], dtype="string"),
    }
)


def run(module: str, config: dict[str, Any], *chunks: pd.DataFrame) -> pd.DataFrame:
    step = build_step(module, config)
    outs = [step.process(chunk) for chunk in (chunks or (ORDERS,))]
    outs.append(step.finish())
    frames = [f for f in outs if f is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ids(frame: pd.DataFrame) -> list[int]:
    return [int(v) for v in frame["id"]]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"column": "status", "op": "eq", "value": "paid"}, [1, 3]),
        ({"column": "status", "op": "ne", "value": "paid"}, [2, 5]),  # NULL status: dropped
        ({"column": "amount", "op": "lt", "value": 3.5}, [5]),
        ({"column": "amount", "op": "le", "value": 3.5}, [2, 5]),
        ({"column": "amount", "op": "gt", "value": 7}, [1]),
        ({"column": "amount", "op": "ge", "value": 7}, [1, 4]),
        ({"column": "city", "op": "in", "value": ["Rome", "Paris"]}, [2, 4]),
        ({"column": "city", "op": "not_in", "value": ["Rome"]}, [1, 3]),  # NULL city: dropped
        ({"column": "amount", "op": "is_null"}, [3]),
        ({"column": "city", "op": "not_null"}, [1, 2, 3, 4]),
        ({"column": "amount", "op": "between", "value": [3.5, 7]}, [2, 4]),
        ({"column": "city", "op": "like", "value": "O%o"}, [1, 3]),
        ({"column": "city", "op": "like", "value": "R_me"}, [2, 4]),
        ({"all": [{"column": "status", "op": "eq", "value": "paid"},
                  {"column": "amount", "op": "not_null"}]}, [1]),
        ({"any": [{"column": "status", "op": "eq", "value": "void"},
                  {"all": [{"column": "city", "op": "eq", "value": "Rome"},
                           {"column": "amount", "op": "gt", "value": 5}]}]}, [4, 5]),
    ],
)  # fmt: skip
def test_filter_rows(condition: dict[str, Any], expected: list[int]) -> None:
    assert ids(run("filter_rows", condition)) == expected


def test_filter_timestamps_compare_with_iso_text() -> None:
    frame = pd.DataFrame(
        {"id": [1, 2], "t": pd.to_datetime(["2024-01-01T00:00Z", "2024-02-01T00:00Z"], utc=True)}
    )
    out = run("filter_rows", {"column": "t", "op": "ge", "value": "2024-01-15"}, frame)
    assert ids(out) == [2]


def test_select_and_rename() -> None:
    out = run("select_columns", {"columns": ["city", "id"], "rename": {"city": "town"}})
    assert list(out.columns) == ["town", "id"]
    out = run("rename_columns", {"mapping": {"amount": "total"}})
    assert list(out.columns) == ["id", "status", "total", "city"]


def test_cast_columns_null_and_reject() -> None:
    frame = pd.DataFrame(
        {
            "n": ["1", "2.0", "x", None],
            "b": ["yes", "0", "maybe", "TRUE"],
            "t": ["2024-01-01T10:00:00+02:00", "bad", "1700000000", None],
        }
    )
    out = run("cast_columns", {"types": {"n": "integer", "b": "boolean"}}, frame)
    assert out["n"].tolist()[:2] == [1, 2] and pd.isna(out["n"][2]) and pd.isna(out["n"][3])
    assert out["b"].tolist()[:2] == [True, False] and pd.isna(out["b"][2]) and out["b"][3]
    step = build_step("cast_columns", {"types": {"n": "integer"}, "on_error": "reject"})
    kept = step.process(frame)
    assert kept is not None and kept["n"].tolist()[:2] == [1, 2] and len(kept) == 3
    assert step.rejected == 1  # "x"; None stays None and is not a failure
    stamps = build_step("cast_columns", {"types": {"t": "timestamp"}}).process(frame)
    assert stamps is not None
    assert stamps["t"][0] == pd.Timestamp("2024-01-01T08:00:00Z")
    assert pd.isna(stamps["t"][1])


def test_cast_epoch_numbers_and_dates() -> None:
    frame = pd.DataFrame({"s": [1_700_000_000, 1_700_000_000_000]})
    out = run("cast_columns", {"types": {"s": "date"}}, frame)
    assert [str(d) for d in out["s"]] == ["2023-11-14", "2023-11-14"]


def test_derive_column() -> None:
    out = run("derive_column", {"column": "vat", "expression": "round(amount * 0.25, 2)"})
    assert out["vat"].tolist()[:2] == [2.5, 0.88]
    assert pd.isna(out["vat"][2])
    out = run("derive_column", {"column": "label",
                                "expression": "concat(upper(city), '-', string(id))"})  # fmt: skip
    assert out["label"].tolist()[:2] == ["OSLO-1", "ROME-2"]
    expression = "if_else(amount >= 7 and not is_null(city), 1, 0)"
    out = run("derive_column", {"column": "big", "expression": expression})
    assert out["big"].tolist() == [1, 0, 0, 1, 0]
    out = run("derive_column", {"column": "a", "expression": "coalesce(amount, -1)"})
    assert out["a"].tolist() == [10.0, 3.5, -1.0, 7.0, 1.0]


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "amount.real", "[1, 2]", "lambda: 1", "amount if id else 0",
     "open('x')", "amount ** 2", "a < b < c", "x[0]"],
)  # fmt: skip
def test_derive_refuses_what_is_not_in_the_grammar(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_expression_columns() -> None:
    assert parse_expression("round(a / b, 1) + c").columns == {"a", "b", "c"}


def test_deduplicate_across_chunks() -> None:
    first, second = ORDERS.iloc[:3], ORDERS.iloc[3:]
    out = run("deduplicate", {"key": ["city"]}, first, second)
    assert ids(out) == [1, 2, 5]
    out = run("deduplicate", {"key": ["city"], "keep": "last"}, first, second)
    assert ids(out) == [3, 4, 5]


def test_aggregate_across_chunks() -> None:
    config = {"group_by": ["city"], "aggregations": {"amount": "sum", "id": "count"},
              "count_as": "rows"}  # fmt: skip
    out = run("aggregate", config, ORDERS.iloc[:2], ORDERS.iloc[2:])
    # Oslo: ids 1, 3 (amount 10 + NULL); Rome: 2, 4 (3.5 + 7); NULL city: 5 (1.0).
    assert out["city"].tolist()[:2] == ["Oslo", "Rome"] and pd.isna(out["city"][2])
    assert out["amount"].tolist() == [10.0, 10.5, 1.0]
    assert out["id"].tolist() == [2, 2, 1]
    assert out["rows"].tolist() == [2, 2, 1]
    avg = run("aggregate", {"group_by": ["city"], "aggregations": {"amount": "avg",
                                                                  "id": "max"}})  # fmt: skip
    assert avg["amount"].tolist() == [10.0, 5.25, 1.0]  # NULL amounts are not counted
    assert avg["id"].tolist() == [3, 4, 5]


def test_join_inner_and_left() -> None:
    cities = pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"], "country": ["NO", "IT", "XX"]})
    cities = cities.iloc[:2]
    step = build_step("join", {"right": "cities", "on": ["city"]})
    step.process(ORDERS, 0)
    step.process(cities, 1)
    out = step.finish()
    assert out is not None
    assert ids(out) == [1, 2, 3, 4] and out["country"].tolist() == ["NO", "IT", "NO", "IT"]
    left = build_step("join", {"right": "cities", "on": ["city"], "how": "left"})
    left.process(ORDERS, 0)
    left.process(cities, 1)
    out = left.finish()
    assert out is not None and ids(out) == [1, 2, 3, 4, 5] and pd.isna(out["country"][4])


def test_mask_columns() -> None:
    digest = hashlib.sha256(b"Oslo").hexdigest()
    out = run("mask_columns", {"columns": ["city"]})
    assert out["city"].tolist()[:1] == [digest] and pd.isna(out["city"][4])
    assert out["city"][0] == out["city"][2]
    out = run("mask_columns", {"columns": ["city"], "method": "keep_last", "keep": 2})
    assert out["city"].tolist()[:2] == ["****lo", "****me"]
    out = run("mask_columns", {"columns": ["status"], "method": "redact"})
    assert out["status"].tolist()[:3] == ["***"] * 3 and pd.isna(out["status"][3])


def test_fill_sort_limit() -> None:
    out = run("fill_nulls", {"values": {"city": "unknown", "amount": 0}})
    assert out["city"].tolist()[4] == "unknown" and out["amount"].tolist()[2] == 0
    out = run("sort_rows", {"by": ["amount"], "descending": True})
    assert ids(out) == [1, 4, 2, 5, 3]  # NULL last
    out = run("limit_rows", {"count": 3}, ORDERS.iloc[:2], ORDERS.iloc[2:])
    assert ids(out) == [1, 2, 3]
