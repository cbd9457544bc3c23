"""The check rules: each check passes, warns and errors at the documented levels."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import pytest

from pipeline_platform.monitoring import checks
from pipeline_platform.registry.document import TableConfig

PASS = (True, dg.AssetCheckSeverity.WARN)
WARN = (False, dg.AssetCheckSeverity.WARN)
ERROR = (False, dg.AssetCheckSeverity.ERROR)


def table(**changes: object) -> TableConfig:
    return TableConfig.model_validate(
        {
            "name": "t",
            "mappings": [{"source": "id", "column": "id", "type": "integer"}],
            **changes,
        }
    )


def level(verdict: checks.Verdict | None) -> tuple[bool, dg.AssetCheckSeverity]:
    assert verdict is not None
    return verdict.passed, verdict.severity


@pytest.mark.parametrize(("lag", "expected"), [(0, PASS), (500, PASS), (501, WARN), (1001, ERROR)])
def test_lag_in_messages(lag: int, expected: tuple[bool, dg.AssetCheckSeverity]) -> None:
    assert level(checks.lag_messages_verdict(table(max_lag_messages=1000), lag)) == expected
    assert checks.lag_messages_verdict(table(), lag) is None


@pytest.mark.parametrize(("age", "expected"), [(0.0, PASS), (30.0, PASS), (31, WARN), (61, ERROR)])
def test_lag_in_seconds(age: float, expected: tuple[bool, dg.AssetCheckSeverity]) -> None:
    assert level(checks.lag_seconds_verdict(table(max_lag_seconds=60), age)) == expected
    assert checks.lag_seconds_verdict(table(max_lag_seconds=60), None) is None


@pytest.mark.parametrize(
    ("run", "day", "expected"),
    [
        ((0, 1000), (0, 5000), PASS),
        ((5, 1000), (5, 5000), PASS),  # 0.005: at half of the 0.01 default
        ((6, 1000), (6, 5000), WARN),
        ((0, 1000), (60, 5000), ERROR),  # the last 24 h are worse than the last run
        ((11, 1000), None, ERROR),
    ],
)
def test_dead_letter_ratio_default_limit(
    run: tuple[int, int], day: tuple[int, int] | None, expected: tuple[bool, object]
) -> None:
    verdict = checks.dead_letter_verdict(table(), run, day)
    assert level(verdict) == expected
    assert verdict.metadata["max_dead_letter_ratio"] == 0.01
    assert level(checks.dead_letter_verdict(table(max_dead_letter_ratio=0.5), (11, 1000), day))[0]


def test_retention_loss_is_always_an_error_naming_the_offsets() -> None:
    assert level(checks.retention_verdict({}, pending=False)) == (True, dg.AssetCheckSeverity.ERROR)
    verdict = checks.retention_verdict({2: (10, 19), 0: (0, 4)}, pending=True)
    assert level(verdict) == ERROR
    assert verdict.metadata["messages_lost_to_retention"] == 15
    assert "partition 0: offsets 0..4, partition 2: offsets 10..19" in verdict.description


@pytest.mark.parametrize(("rows", "expected"), [(98, PASS), (50, WARN), (0, ERROR)])
def test_rows_growing(rows: int, expected: tuple[bool, object]) -> None:
    assert level(checks.rows_growing_verdict(100, 2, rows)) == expected


@dataclass
class _Result:
    messages: int = 100
    dead_letters: int = 0
    rows_written: int = 100
    lag_left: int = 0
    retention_lost: dict[int, tuple[int, int]] = field(default_factory=dict)


def test_run_verdicts_cover_the_table_checks() -> None:
    append = table(max_lag_messages=10, max_lag_seconds=60)
    names = {v.check_name for v in checks.run_verdicts(append, _Result(), (0, 100), 0.0)}
    specs = {s.name for s in checks.check_specs(dg.AssetKey("t"), append)}
    assert names == specs
    upsert = table(upsert_key=["id"])
    verdicts = checks.run_verdicts(upsert, _Result(retention_lost={1: (3, 9)}), None)
    assert {v.check_name: level(v) for v in verdicts} == {
        "dead_letter_ratio": PASS,
        "retention_loss": ERROR,
    }
    assert {s.name for s in checks.check_specs(dg.AssetKey("t"), upsert)} == {
        "dead_letter_ratio",
        "retention_loss",
    }


def test_freshness_warns_at_half_the_window() -> None:
    policy = checks.freshness_policy(table(freshness_minutes=10))
    assert isinstance(policy, dg.FreshnessPolicy)
    assert checks.freshness_policy(table()) is None
    assert checks.freshness_policy(table(freshness_minutes=1)) is not None  # no warn window
