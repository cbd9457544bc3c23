"""Structured filter conditions: one tree, evaluated on chunks (pandas) or rendered as SQL.

A condition is ``{column, op, value}``; groups are ``{all: [...]}`` and ``{any: [...]}``. Both
renderings follow SQL semantics: a comparison with NULL is false, so a filter pushed down into a
source query keeps exactly the rows the chunk filter would keep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas/numpy load only when a chunk is filtered (not at definitions load)
    import numpy as np
    import pandas as pd

Condition = Mapping[str, Any]


def condition_columns(condition: Condition) -> Iterator[str]:
    """Yield every column a condition tree reads."""
    for group in ("all", "any"):
        if group in condition:
            for child in condition[group]:
                yield from condition_columns(child)
            return
    yield condition["column"]


def like_regex(pattern: str) -> str:
    """Translate a SQL LIKE pattern (``%`` any run, ``_`` one character) into a regex."""
    return "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)


def _coerce(series: pd.Series, value: Any) -> Any:
    """Bring a config value to the column's type (timestamps, numbers given as text)."""
    import pandas as pd

    if value is None:
        return None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamp = pd.Timestamp(value)
        tz = getattr(series.dtype, "tz", None)
        if tz is not None and stamp.tzinfo is None:
            return stamp.tz_localize("UTC")
        if tz is None and stamp.tzinfo is not None:
            return stamp.tz_convert("UTC").tz_localize(None)
        return stamp
    if pd.api.types.is_numeric_dtype(series.dtype) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _bool(result: Any) -> np.ndarray:
    import numpy as np
    import pandas as pd

    return np.asarray(pd.Series(result).fillna(False).astype(bool))


_COMPARE: dict[str, Callable[[pd.Series, Any], Any]] = {
    "eq": lambda s, v: s == v,
    "ne": lambda s, v: s != v,
    "lt": lambda s, v: s < v,
    "le": lambda s, v: s <= v,
    "gt": lambda s, v: s > v,
    "ge": lambda s, v: s >= v,
}


def condition_mask(condition: Condition, frame: pd.DataFrame) -> np.ndarray:
    """Return the boolean mask of the rows of ``frame`` that satisfy ``condition``.

    Args:
        condition: A condition tree (see the module docstring).
        frame: A chunk.

    Returns:
        One boolean per row; NULL compares false, as in SQL.
    """
    import numpy as np

    if "all" in condition or "any" in condition:
        is_all = "all" in condition
        masks = [condition_mask(c, frame) for c in condition["all" if is_all else "any"]]
        return np.logical_and.reduce(masks) if is_all else np.logical_or.reduce(masks)
    series = frame[condition["column"]]
    op = condition["op"]
    present = np.asarray(series.notna())
    if op == "is_null":
        return ~present
    if op == "not_null":
        return present
    value: Any = condition.get("value")
    if op in _COMPARE:
        return _bool(_COMPARE[op](series, _coerce(series, value))) & present
    if op in ("in", "not_in"):
        hits = np.asarray(series.isin([_coerce(series, v) for v in value]))
        return (hits if op == "in" else ~hits) & present
    if op == "between":
        low, high = (_coerce(series, v) for v in value)
        return _bool((series >= low) & (series <= high)) & present
    if op == "like":
        matched = series.astype("string").str.fullmatch(like_regex(str(value)), case=True)
        return _bool(matched) & present
    raise ValueError(f"unknown filter op {op!r}")


_SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def condition_sql(
    condition: Condition, quote: Callable[[str], str], literal: Callable[[Any], str], dialect: str
) -> str | None:
    """Render a condition tree as a SQL boolean expression, or None when not exactly possible.

    Args:
        condition: The condition tree.
        quote: Quotes a column name.
        literal: Renders a value as a safe SQL literal (the driver's quoting).
        dialect: ``postgresql`` or ``sqlite`` (LIKE is case-insensitive on SQLite: not pushed).

    Returns:
        The expression, or None when part of it has no exact SQL equivalent.
    """
    if "all" in condition or "any" in condition:
        is_all = "all" in condition
        parts = [
            condition_sql(c, quote, literal, dialect) for c in condition["all" if is_all else "any"]
        ]
        if any(p is None for p in parts):
            return None
        return "(" + (" AND " if is_all else " OR ").join(p for p in parts if p) + ")"
    column = quote(condition["column"])
    op = condition["op"]
    value: Any = condition.get("value")
    if op == "is_null":
        return f"{column} IS NULL"
    if op == "not_null":
        return f"{column} IS NOT NULL"
    if isinstance(value, bool) or (
        isinstance(value, list) and any(isinstance(v, bool) for v in value)
    ):
        return None  # booleans are 0/1 on SQLite and true/false in pandas: keep it in pandas
    if op in _SQL_OPS:
        return f"{column} {_SQL_OPS[op]} {literal(value)}"
    if op in ("in", "not_in"):
        items = ", ".join(literal(v) for v in value)
        # NOT IN with a NULL column is NULL (false), as the chunk filter.
        return f"{column} {'IN' if op == 'in' else 'NOT IN'} ({items})"
    if op == "between":
        return f"{column} BETWEEN {literal(value[0])} AND {literal(value[1])}"
    if op == "like" and dialect == "postgresql":
        return f"{column} LIKE {literal(value)}"
    return None
