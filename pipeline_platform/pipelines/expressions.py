"""A small, safe expression language for derived columns, evaluated on whole chunks.

Expressions are parsed with Python's ``ast`` parser (``mode="eval"``) and then accepted only if
every node is on an allow-list: column names, literals (numbers, strings, true/false/null),
arithmetic (``+ - * / // %``), comparisons, ``and`` / ``or`` / ``not`` and a fixed set of functions.
Nothing is ever passed to ``eval`` or ``compile``: the checked tree is turned into a closure that
computes a pandas Series from a DataFrame chunk with vectorized operations (compiled once per
pipeline run, applied once per chunk).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas/numpy load only when an expression is evaluated, not when parsed
    import pandas as pd

Value = Any  # a pandas Series or a scalar
Compiled = Callable[["pd.DataFrame"], Value]

_MAX_LENGTH = 2000
_MAX_DEPTH = 40

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_CONSTANT_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False,
                   "None": None}  # fmt: skip


class ExpressionError(ValueError):
    """An expression that is not in the grammar; the message says where and why."""


def _series(value: Value, frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    if isinstance(value, pd.Series):
        return value
    return pd.Series(
        [value] * len(frame), index=frame.index, dtype=object if value is None else None
    )


def _str(value: Value, frame: pd.DataFrame) -> Any:
    return _series(value, frame).astype("string")


def _dt(value: Value, frame: pd.DataFrame) -> Any:
    import pandas as pd

    return pd.to_datetime(_series(value, frame), utc=True, errors="coerce").dt


def _floor(frame: pd.DataFrame, value: Value) -> Value:
    import numpy as np

    return np.floor(_series(value, frame).astype("float64"))


def _ceil(frame: pd.DataFrame, value: Value) -> Value:
    import numpy as np

    return np.ceil(_series(value, frame).astype("float64"))


def _round(frame: pd.DataFrame, value: Value, digits: Value = 0) -> Value:
    return _series(value, frame).astype("float64").round(int(digits))


def _concat(frame: pd.DataFrame, *values: Value) -> Value:
    parts = [_str(v, frame).fillna("") for v in values]
    result = parts[0]
    for part in parts[1:]:
        result = result + part
    return result


def _coalesce(frame: pd.DataFrame, *values: Value) -> Value:
    result = _series(values[0], frame)
    for value in values[1:]:
        result = result.where(result.notna(), _series(value, frame))
    return result


def _if_else(frame: pd.DataFrame, condition: Value, then: Value, otherwise: Value) -> Value:
    mask = _series(condition, frame).fillna(False).astype(bool)
    return _series(then, frame).where(mask, _series(otherwise, frame))


# name → (minimum arguments, maximum arguments, implementation(frame, *args))
_FUNCTIONS: dict[str, tuple[int, int, Callable[..., Value]]] = {
    "lower": (1, 1, lambda f, v: _str(v, f).str.lower()),
    "upper": (1, 1, lambda f, v: _str(v, f).str.upper()),
    "trim": (1, 1, lambda f, v: _str(v, f).str.strip()),
    "length": (1, 1, lambda f, v: _str(v, f).str.len()),
    "abs": (1, 1, lambda f, v: _series(v, f).abs()),
    "round": (1, 2, _round),
    "floor": (1, 1, _floor),
    "ceil": (1, 1, _ceil),
    "coalesce": (2, 16, _coalesce),
    "concat": (1, 16, _concat),
    "if_else": (3, 3, _if_else),
    "is_null": (1, 1, lambda f, v: _series(v, f).isna()),
    "string": (1, 1, lambda f, v: _str(v, f)),
    "year": (1, 1, lambda f, v: _dt(v, f).year),
    "month": (1, 1, lambda f, v: _dt(v, f).month),
    "day": (1, 1, lambda f, v: _dt(v, f).day),
    "hour": (1, 1, lambda f, v: _dt(v, f).hour),
    "date": (1, 1, lambda f, v: _dt(v, f).date),
}


@dataclass(frozen=True)
class Expression:
    """A parsed expression: the columns it reads and the compiled chunk function."""

    text: str
    columns: frozenset[str]
    evaluate: Compiled

    def __call__(self, frame: pd.DataFrame) -> pd.Series:
        """Evaluate on a chunk and return one value per row."""
        return _series(self.evaluate(frame), frame)


def parse_expression(text: str) -> Expression:
    """Parse and check an expression of the derive-column grammar.

    Args:
        text: The expression, e.g. ``round(duration_ms / 1000, 1)``.

    Returns:
        The compiled expression.

    Raises:
        ExpressionError: when the text is not in the grammar (one line saying why).
    """
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"syntax error at column {error.offset}: {error.msg}") from None
    columns: set[str] = set()
    evaluate = _compile(tree.body, columns, 0)
    return Expression(text, frozenset(columns), evaluate)


def _compile(node: ast.AST, columns: set[str], depth: int) -> Compiled:
    if depth > _MAX_DEPTH:
        raise ExpressionError("expression nested too deeply")
    d = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, (int, float, str, bool)) and value is not None:
            raise ExpressionError(f"unsupported literal {value!r}")
        return lambda frame: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in _CONSTANT_NAMES:
            constant = _CONSTANT_NAMES[name]
            return lambda frame: constant
        columns.add(name)
        return lambda frame: frame[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        fn = _BINARY[type(node.op)]
        left, right = _compile(node.left, columns, d), _compile(node.right, columns, d)
        return lambda frame: fn(left(frame), right(frame))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        inner = _compile(node.operand, columns, d)
        if isinstance(node.op, ast.Not):
            return lambda frame: ~_series(inner(frame), frame).fillna(False).astype(bool)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return lambda frame: inner(frame) * sign
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, columns, d) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def boolean(frame: pd.DataFrame) -> Value:
            masks = [_series(p(frame), frame).fillna(False).astype(bool) for p in parts]
            result = masks[0]
            for mask in masks[1:]:
                result = (result & mask) if is_and else (result | mask)
            return result

        return boolean
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise ExpressionError("use one comparison (==, !=, <, <=, >, >=) at a time")
        fn = _COMPARE[type(node.ops[0])]
        left, right = _compile(node.left, columns, d), _compile(node.comparators[0], columns, d)
        return lambda frame: fn(left(frame), right(frame))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name not in _FUNCTIONS:
            raise ExpressionError(f"unknown function {name!r} (known: {', '.join(_FUNCTIONS)})")
        low, high, impl = _FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            raise ExpressionError(f"{name}() takes {low}..{high} arguments")
        args = [_compile(a, columns, d) for a in node.args]
        return lambda frame: impl(frame, *(a(frame) for a in args))
    raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
