"""Incremental reads: the watermark (cursor value plus key for ties) and its JSON form.

The watermark of an extractor is the ``(incremental_column, *key)`` of the last row it read, in
``ORDER BY incremental_column, key`` order; the next run reads the rows whose tuple is greater.
It is stored in the destination warehouse's state table (``pp_state``, scope
``pipeline:<name>``) by compare-and-set in the same transaction as the rows (see
``destinations``), so a run that dies is redone from the previous watermark and two runs never
both commit the same range.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


def scalar(value: Any) -> Any:
    """Return a JSON-able Python scalar (timestamps as ISO 8601, numpy numbers as Python)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def last_position(frame: Any, cursor: str, key: tuple[str, ...]) -> list[Any] | None:
    """Return ``[cursor, *key]`` of the last row of an ordered chunk, or None when empty."""
    if not len(frame):
        return None
    if isinstance(frame, pa.Table):
        row = frame.slice(len(frame) - 1).select([cursor, *key]).to_pylist()[0]
        return [scalar(row[column]) for column in (cursor, *key)]
    last = frame.iloc[-1]
    return [scalar(last[column]) for column in (cursor, *key)]


def state_key(pipeline: str, node: str) -> tuple[str, str]:
    """Return the ``(scope, name)`` state key of an extractor's watermark."""
    return (f"pipeline:{pipeline}", f"watermark:{node}")
