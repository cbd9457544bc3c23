"""The asset checks of an ingested table: which exist, and how a figure becomes a verdict.

One home for the rules, shared by the run (figures of the ingestion just done) and the Kafka
lag sensor (figures read on every tick, no run). A threshold gives two levels: above half of
it the check fails with severity WARN, above it with ERROR. Messages deleted by broker
retention before ingestion always fail with ERROR. Checks are plain data (:class:`Verdict`)
turned into Dagster events at the edge, so no function is generated per table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.registry.document import TableConfig

MAX_LAG_MESSAGES = naming.MAX_LAG_CHECK_NAME
MAX_LAG_SECONDS = naming.MAX_LAG_SECONDS_CHECK_NAME
DEAD_LETTER_RATIO = naming.DEAD_LETTER_CHECK_NAME
RETENTION_LOSS = naming.RETENTION_CHECK_NAME
ROWS_GROWING = naming.ROWS_GROWING_CHECK_NAME

DEFAULT_MAX_DEAD_LETTER_RATIO = 0.01
"""The dead-letter ratio limit of a table whose registry entry sets none."""

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR


@dataclass(frozen=True)
class Verdict:
    """One evaluation of one check: passed or failed, with its severity and figures."""

    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def as_result(self, key: dg.AssetKey) -> dg.AssetCheckResult:
        """Return the verdict as a check result yielded by a run."""
        return dg.AssetCheckResult(**self._fields(key))

    def as_evaluation(self, key: dg.AssetKey) -> dg.AssetCheckEvaluation:
        """Return the verdict as a runless check evaluation (reported by a sensor tick)."""
        return dg.AssetCheckEvaluation(**self._fields(key))

    def _fields(self, key: dg.AssetKey) -> dict[str, Any]:
        return {
            "asset_key": key,
            "check_name": self.check_name,
            "passed": self.passed,
            "severity": self.severity,
            "description": self.description,
            "metadata": dict(self.metadata),
        }


def dead_letter_limit(table: TableConfig) -> float:
    """Return the table's dead-letter ratio limit (registry value or the 0.01 default)."""
    if table.max_dead_letter_ratio is None:
        return DEFAULT_MAX_DEAD_LETTER_RATIO
    return table.max_dead_letter_ratio


def check_specs(key: dg.AssetKey, table: TableConfig) -> list[dg.AssetCheckSpec]:
    """Return the checks of one table.

    Lag in messages and in seconds when their thresholds are set; dead-letter ratio and
    retention loss always; rows growing for append tables (no upsert key).
    """
    specs: list[tuple[str, str]] = []
    if table.max_lag_messages is not None:
        specs.append(
            (
                MAX_LAG_MESSAGES,
                f"Messages not yet ingested: WARN above {table.max_lag_messages // 2}, "
                f"ERROR above {table.max_lag_messages} (every sensor tick and run)",
            )
        )
    if table.max_lag_seconds is not None:
        specs.append(
            (
                MAX_LAG_SECONDS,
                f"Age of the oldest message not yet ingested: WARN above "
                f"{table.max_lag_seconds / 2:g} s, ERROR above {table.max_lag_seconds} s",
            )
        )
    limit = dead_letter_limit(table)
    specs.append(
        (
            DEAD_LETTER_RATIO,
            f"Dead letters per message over the last run and the last 24 h: WARN above "
            f"{limit / 2:g}, ERROR above {limit:g}",
        )
    )
    specs.append(
        (RETENTION_LOSS, "ERROR when Kafka retention deleted messages before they were ingested")
    )
    if not table.upsert_key:
        specs.append((ROWS_GROWING, "An append table gains one row per valid message ingested"))
    return [dg.AssetCheckSpec(name=name, asset=key, description=text) for name, text in specs]


def freshness_policy(table: TableConfig) -> dg.FreshnessPolicy | None:
    """Return the freshness policy of ``freshness_minutes``: warn after half, fail after all."""
    if table.freshness_minutes is None:
        return None
    fail = timedelta(minutes=table.freshness_minutes)
    warn = fail / 2 if fail / 2 >= timedelta(minutes=1) else None
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def _levels(value: float, limit: float) -> tuple[bool, dg.AssetCheckSeverity, str]:
    if value > limit:
        return False, ERROR, "above the limit"
    if value > limit / 2:
        return False, WARN, "above half of the limit"
    return True, WARN, "within the limit"


def lag_messages_verdict(table: TableConfig, lag: int) -> Verdict | None:
    """Return the lag-in-messages verdict, or None when the table has no threshold."""
    limit = table.max_lag_messages
    if limit is None:
        return None
    passed, severity, where = _levels(lag, limit)
    return Verdict(
        MAX_LAG_MESSAGES,
        passed,
        severity,
        f"{lag} messages not yet ingested: {where} ({limit})",
        {"lag_messages": lag, "max_lag_messages": limit},
    )


def lag_seconds_verdict(table: TableConfig, seconds: float | None) -> Verdict | None:
    """Return the lag-in-seconds verdict; None without a threshold or an unknown age."""
    limit = table.max_lag_seconds
    if limit is None or seconds is None:
        return None
    passed, severity, where = _levels(seconds, limit)
    return Verdict(
        MAX_LAG_SECONDS,
        passed,
        severity,
        f"Oldest message not yet ingested is {seconds:.0f} s old: {where} ({limit} s)",
        {"lag_seconds": round(seconds, 3), "max_lag_seconds": limit},
    )


def retention_verdict(lost: Mapping[int, tuple[int, int]], *, pending: bool) -> Verdict:
    """Return the retention-loss verdict of offset ranges ``partition → (first, last)``.

    Args:
        lost: The deleted offset ranges per partition (empty: nothing lost).
        pending: True on a sensor tick (deleted before the next run can read them), False for
            what a run skipped.
    """
    count = sum(last - first + 1 for first, last in lost.values())
    ranges = ", ".join(f"partition {p}: offsets {a}..{b}" for p, (a, b) in sorted(lost.items()))
    if not lost:
        return Verdict(RETENTION_LOSS, True, ERROR, "No message lost to retention", {})
    when = "are deleted and will be skipped" if pending else "were deleted before ingestion"
    return Verdict(
        RETENTION_LOSS,
        False,
        ERROR,
        f"{count} messages {when} ({ranges})",
        {"messages_lost_to_retention": count, "lost_offsets": ranges},
    )


def dead_letter_verdict(
    table: TableConfig, run: tuple[int, int], day: tuple[int, int] | None
) -> Verdict:
    """Return the dead-letter verdict, the worse of the last run and the last 24 hours.

    Args:
        table: The table configuration (its ``max_dead_letter_ratio``).
        run: ``(dead_letters, messages)`` of the last run.
        day: ``(dead_letters, messages)`` over the last 24 hours, when known.
    """
    limit = dead_letter_limit(table)
    ratios = {"run": _ratio(*run)}
    if day is not None:
        ratios["24h"] = _ratio(*day)
    worst = max(ratios, key=lambda name: ratios[name])
    passed, severity, where = _levels(ratios[worst], limit)
    metadata: dict[str, Any] = {
        "dead_letter_ratio_run": ratios["run"],
        "max_dead_letter_ratio": limit,
    }
    if day is not None:
        metadata["dead_letter_ratio_24h"] = ratios["24h"]
        metadata["dead_letters_24h"] = day[0]
    return Verdict(
        DEAD_LETTER_RATIO,
        passed,
        severity,
        f"Dead-letter ratio {ratios[worst]:.4g} ({worst}): {where} ({limit:g})",
        metadata,
    )


def _ratio(dead: int, messages: int) -> float:
    return round(dead / messages, 6) if messages > 0 else 0.0


def rows_growing_verdict(messages: int, dead_letters: int, rows_written: int) -> Verdict:
    """Return whether an append table gained a row per valid message of the run.

    No row for valid messages fails with ERROR, fewer rows than valid messages with WARN.
    """
    expected = max(0, messages - dead_letters)
    metadata = {"rows_written": rows_written, "valid_messages": expected}
    if rows_written >= expected:
        text = f"{rows_written} rows appended for {expected} valid messages"
        return Verdict(ROWS_GROWING, True, WARN, text, metadata)
    severity = ERROR if rows_written == 0 else WARN
    text = f"Only {rows_written} rows appended for {expected} valid messages"
    return Verdict(ROWS_GROWING, False, severity, text, metadata)


def run_verdicts(
    table: TableConfig,
    result: Any,
    day: tuple[int, int] | None,
    age: float | None = None,
) -> list[Verdict]:
    """Return the verdicts of a table's checks after an ingestion run.

    Args:
        table: The table configuration.
        result: The run's ``IngestionResult`` (messages, dead letters, rows, lag left, losses).
        day: ``(dead_letters, messages)`` over the last 24 hours including this run.
        age: Lag in seconds right after the run, when read.
    """
    messages, dead = int(result.messages), int(result.dead_letters)
    lag = int(result.lag_left)
    found = [
        lag_messages_verdict(table, lag),
        lag_seconds_verdict(table, age),
        dead_letter_verdict(table, (dead, messages), day),
        retention_verdict(dict(getattr(result, "retention_lost", {})), pending=False),
    ]
    if not table.upsert_key:
        found.append(rows_growing_verdict(messages, dead, int(result.rows_written)))
    return [verdict for verdict in found if verdict is not None]
