"""Run tags of pipeline runs: the trigger from Dagster's tags, and the tags a run lacks."""

from __future__ import annotations

from pipeline_platform.pipelines.run_tags import run_filters, tags_to_add, trigger_of


def test_trigger_prefers_dagster_tags_over_job_defaults() -> None:
    job_default = {"pipeline_platform/trigger": "manual"}
    assert trigger_of({}) == "manual"
    assert trigger_of({"pipeline_platform/trigger": "cli"}) == "cli"
    assert trigger_of({**job_default, "dagster/schedule_name": "nightly"}) == "schedule"
    assert trigger_of({**job_default, "dagster/sensor_name": "s"}) == "sensor"
    assert trigger_of({"dagster/backfill": "abc"}) == "backfill"


def test_tags_to_add() -> None:
    tagged = {"pipeline_platform/pipeline": "a", "pipeline_platform/trigger": "schedule",
              "dagster/schedule_name": "x"}  # fmt: skip
    assert tags_to_add(tagged, "a") == {}
    assert tags_to_add({}, "a") == {
        "pipeline_platform/pipeline": "a",
        "pipeline_platform/trigger": "manual",
    }
    # A second pipeline of the same run gets a tag of its own; the trigger is corrected.
    run = {"pipeline_platform/pipeline": "a", "pipeline_platform/trigger": "manual",
           "dagster/sensor_name": "s"}  # fmt: skip
    assert tags_to_add(run, "b") == {
        "pipeline_platform/also/b": "true",
        "pipeline_platform/trigger": "sensor",
    }
    assert {"pipeline_platform/also/b": "true"} in run_filters("b")
