"""Transformer steps: each takes whole chunks (pandas DataFrames) and returns whole chunks.

A step has ``process(frame, port)`` (called per input chunk; returns the chunk to pass on, or
None) and ``finish()`` (called once after the last chunk; returns what was held back, or None).
Streaming steps (filter, select, rename, cast, derive, mask, fill, limit) pass chunks straight
through; blocking steps (deduplicate, sort, join) hold the run's rows until ``finish``; aggregate
keeps partial aggregates per group, so its memory grows with the groups, not the rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas import DataFrame as Frame

from pipeline_platform.config import environment
from pipeline_platform.pipelines.conditions import condition_mask
from pipeline_platform.pipelines.expressions import parse_expression


class Step:
    """Base step: streams chunks unchanged; subclasses override :meth:`apply` or both hooks.

    ``arrow_ok`` steps also take Arrow tables as they come from the extractors; the runner
    converts a chunk to pandas only before a step that needs it.
    """

    rejected = 0
    arrow_ok = False

    def process(self, frame: Frame, port: int = 0) -> Frame | None:
        """Transform one input chunk (``port`` is the input index for multi-input steps)."""
        return self.apply(frame)

    def apply(self, frame: Frame) -> Frame:
        """Transform one chunk (streaming steps)."""
        return frame

    def finish(self) -> Frame | None:
        """Return rows held back until the end of the input, or None."""
        return None


class PassThrough(Step):
    """A step that passes every chunk on unchanged (a filter pushed into the source query)."""

    arrow_ok = True


class FilterRows(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.condition = config

    def apply(self, frame: Frame) -> Frame:
        mask = condition_mask(self.condition, frame)
        return frame[mask]


class SelectColumns(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.columns = list(config["columns"])
        self.rename = dict(config.get("rename") or {})

    def apply(self, frame: Frame) -> Frame:
        out = frame[self.columns]
        return out.rename(columns=self.rename) if self.rename else out


class RenameColumns(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.mapping = dict(config["mapping"])

    def apply(self, frame: Frame) -> Frame:
        return frame.rename(columns=self.mapping)


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def cast_series(series: pd.Series, type_name: str) -> pd.Series:
    """Convert a column to a logical type; values that do not convert become NULL."""
    if type_name == "string":
        return series.astype("string")
    if type_name in ("integer", "float"):
        numbers = pd.to_numeric(series, errors="coerce")
        if type_name == "float":
            return numbers.astype("float64")
        whole = numbers.where(np.isfinite(numbers.astype("float64")) & (numbers % 1 == 0))
        return whole.astype("Int64")
    if type_name == "boolean":
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.astype("boolean")
        if pd.api.types.is_numeric_dtype(series.dtype):
            return (series != 0).astype("boolean").where(series.notna(), pd.NA)
        text = series.astype("string").str.strip().str.lower()
        result = pd.Series(pd.NA, index=series.index, dtype="boolean")
        result[text.isin(_TRUE).fillna(False)] = True
        result[text.isin(_FALSE).fillna(False)] = False
        return result
    if type_name in ("timestamp", "date"):
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        ):
            seconds = series.where(series.abs() < 1e11, series / 1000)  # epoch s or ms
            stamps = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            stamps = series if getattr(series.dtype, "tz", None) else series.dt.tz_localize("UTC")
        else:
            stamps = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        return stamps.dt.normalize().dt.date if type_name == "date" else stamps
    if type_name == "uuid":
        text = series.astype("string").str.strip().str.lower()
        ok = text.str.fullmatch(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
        return text.where(ok.fillna(False).astype(bool))
    if type_name == "json":
        return series
    raise ValueError(f"unknown type {type_name!r}")


class CastColumns(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.types = dict(config["types"])
        self.reject = config.get("on_error") == "reject"
        self.rejected = 0

    def apply(self, frame: Frame) -> Frame:
        out = frame.copy()
        bad = np.zeros(len(frame), dtype=bool)
        for column, type_name in self.types.items():
            before = np.asarray(frame[column].notna())
            out[column] = cast_series(frame[column], type_name)
            bad |= before & np.asarray(out[column].isna())
        if self.reject and bad.any():
            self.rejected += int(bad.sum())
            return out[~bad]
        return out


class DeriveColumn(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.column = config["column"]
        self.expression = parse_expression(config["expression"])

    def apply(self, frame: Frame) -> Frame:
        return frame.assign(**{self.column: self.expression(frame)})


class HoldingStep(Step):
    """A step that needs all its input at once: it holds every chunk and works in ``finish``."""

    def __init__(self) -> None:
        self.held: list[Frame] = []

    def process(self, frame: Frame, port: int = 0) -> Frame | None:
        self.held.append(frame)
        return None

    def finish(self) -> Frame | None:
        if not self.held:
            return None
        frame = pd.concat(self.held, ignore_index=True)
        self.held = []
        return self.finish_all(frame)

    def finish_all(self, frame: Frame) -> Frame:
        """Return the step's output for all of its input, ``frame``."""
        raise NotImplementedError


class Deduplicate(HoldingStep):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.key = list(config["key"])
        self.keep = config.get("keep", "first")

    def finish_all(self, frame: Frame) -> Frame:
        return frame.drop_duplicates(subset=self.key, keep=self.keep)


_PARTIAL = {"sum": ("sum", "count"), "count": ("count",), "min": ("min",), "max": ("max",),
            "avg": ("sum", "count"), "mean": ("sum", "count")}  # fmt: skip
_COMBINE = {"sum": "sum", "count": "sum", "min": "min", "max": "max"}


class Aggregate(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.group_by = list(config["group_by"])
        self.aggregations = dict(config["aggregations"])
        self.count_as = config.get("count_as")
        self.partials: list[Frame] = []
        self.partial_rows = 0

    def _partial(self, frame: Frame, combine: bool) -> Frame:
        spec: dict[str, tuple[str, str]] = {}
        for column, fn in self.aggregations.items():
            for part in _PARTIAL[fn]:
                source = f"__{column}__{part}" if combine else column
                spec[f"__{column}__{part}"] = (source, _COMBINE[part] if combine else part)
        if self.count_as:
            spec["__rows__"] = ("__rows__", "sum") if combine else (self.group_by[0], "size")
        grouped = frame.groupby(self.group_by, dropna=False, sort=False)
        return grouped.agg(**spec).reset_index()

    def process(self, frame: Frame, port: int = 0) -> Frame | None:
        if len(frame):
            self.partials.append(self._partial(frame, combine=False))
            self.partial_rows += len(self.partials[-1])
        if len(self.partials) > 1 and self.partial_rows > 1_000_000:
            self.partials = [self._partial(pd.concat(self.partials), combine=True)]
            self.partial_rows = len(self.partials[0])
        return None

    def finish(self) -> Frame | None:
        columns = [*self.group_by, *self.aggregations, *([self.count_as] if self.count_as else [])]
        if not self.partials:
            return pd.DataFrame(columns=columns)
        merged = self._partial(pd.concat(self.partials, ignore_index=True), combine=True)
        out = merged[self.group_by].copy()
        for column, fn in self.aggregations.items():
            if fn in ("avg", "mean"):
                total = merged[f"__{column}__sum"].astype("float64")
                count = merged[f"__{column}__count"].astype("float64")
                out[column] = (total / count).where(count > 0)
            elif fn == "sum":  # SQL: the sum of no values is NULL, not 0
                total = merged[f"__{column}__sum"]
                out[column] = total.where(merged[f"__{column}__count"] > 0)
            else:
                out[column] = merged[f"__{column}__{fn}"]
        if self.count_as:
            out[self.count_as] = merged["__rows__"].astype("int64")
        self.partials = []
        return out.sort_values(self.group_by, kind="stable", na_position="last").reset_index(
            drop=True
        )


class Join(Step):
    """Join input port 0 (left) with port 1 (right, the ``right`` node)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.on = list(config["on"])
        self.how = config.get("how", "inner")
        self.held: tuple[list[Frame], list[Frame]] = ([], [])

    def process(self, frame: Frame, port: int = 0) -> Frame | None:
        self.held[port].append(frame)
        return None

    def finish(self) -> Frame | None:
        left_chunks, right_chunks = self.held
        if not left_chunks:
            return None
        right = pd.concat(right_chunks, ignore_index=True) if right_chunks else None
        left = pd.concat(left_chunks, ignore_index=True)
        if right is None:
            return left.iloc[0:0] if self.how == "inner" else left
        right = right.dropna(subset=self.on)  # SQL: NULL keys never match
        return left.merge(right, on=self.on, how=self.how, suffixes=("", "_right"))


def _sha256_values(values: np.ndarray, salt: str) -> list[str]:
    return [hashlib.sha256(f"{salt}{v}".encode()).hexdigest() for v in values]


class MaskColumns(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.columns = list(config["columns"])
        self.method = config.get("method", "hash")
        self.keep = int(config.get("keep", 4))
        self.replacement = config.get("replacement", "***")
        salt_env = config.get("salt_env")
        self.salt = environment().get(salt_env, "") if salt_env else ""

    def apply(self, frame: Frame) -> Frame:
        out = frame.copy()
        for column in self.columns:
            series = frame[column]
            present = series.notna()
            if self.method == "hash":
                # Hash each distinct value once (factorize), then broadcast by code.
                codes, uniques = pd.factorize(series.astype("string"))
                digests = np.asarray(_sha256_values(np.asarray(uniques), self.salt), dtype=object)
                values = pd.Series(
                    np.where(
                        codes >= 0, digests[np.maximum(codes, 0)] if len(digests) else None, None
                    ),
                    index=series.index,
                )
            elif self.method == "redact":
                values = pd.Series(self.replacement, index=series.index)
            else:
                text = series.astype("string")
                tail = text.str[-self.keep :] if self.keep else ""
                values = ("*" * 4) + tail
            out[column] = values.where(present, None).astype("string")
        return out


class FillNulls(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.values = dict(config["values"])

    def apply(self, frame: Frame) -> Frame:
        out = frame.copy()
        for column, value in self.values.items():
            series = out[column]
            if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
                out[column] = series.where(series.notna(), value)
            else:
                out[column] = series.fillna(value)
        return out


class SortRows(HoldingStep):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.by = list(config["by"])
        self.ascending = not config.get("descending", False)

    def finish_all(self, frame: Frame) -> Frame:
        return frame.sort_values(
            self.by, ascending=self.ascending, kind="stable", na_position="last"
        ).reset_index(drop=True)


class LimitRows(Step):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.remaining = int(config["count"])

    def apply(self, frame: Frame) -> Frame:
        out = frame.iloc[: self.remaining]
        self.remaining -= len(out)
        return out


TRANSFORMS: dict[str, Callable[[Mapping[str, Any]], Step]] = {
    "filter_rows": FilterRows,
    "select_columns": SelectColumns,
    "rename_columns": RenameColumns,
    "cast_columns": CastColumns,
    "derive_column": DeriveColumn,
    "deduplicate": Deduplicate,
    "aggregate": Aggregate,
    "join": Join,
    "mask_columns": MaskColumns,
    "fill_nulls": FillNulls,
    "sort_rows": SortRows,
    "limit_rows": LimitRows,
}


def build_step(module: str, config: Mapping[str, Any]) -> Step:
    """Return the step of a transformer module configured with ``config``.

    Raises:
        KeyError: when ``module`` is not a transformer of the catalog.
    """
    return TRANSFORMS[module](config)
