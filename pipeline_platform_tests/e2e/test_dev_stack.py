"""End to end: ``pipeline-platform dev`` ingests demo events and runs the demo pipelines.

One stack (``dev_stack``: local broker, demo registry in SQLite, PostgreSQL warehouse, demo
producer at 300 events/s, ``dagster dev`` with its daemon) is observed only through the
webserver's GraphQL API, then cross-checked with SQL. Ctrl-C shutdown of the whole stack is
asserted when the shared fixture is torn down (see ``local_stack.dev_stack``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pipeline_platform.dev.stack import demo_registry_path
from pipeline_platform.factory import naming
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.e2e.graphql_client import materializations, poll, runs, sensor_state
from pipeline_platform_tests.e2e.local_stack import DevStack, dev_stack

__all__ = ["dev_stack"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SENSOR = "kafka_lag_sensor"
FIRST_RUN_SENSOR = "table_pipelines_first_run"


def _tables(run: dict[str, Any]) -> list[str]:
    """The tables of a sensor run (packed runs list several)."""
    return [t for t in run["tags"].get(naming.TABLES_TAG, "").split(",") if t]


def _successful_warehouse_run(url: str) -> dict[str, Any] | None:
    for run in runs(url, statuses=["SUCCESS"], tags={"dagster/sensor_name": SENSOR}):
        if any(table.startswith("warehouse/") for table in _tables(run)):
            return run
    return None


def test_kafka_sensor_run_lands_rows_in_the_warehouse(dev_stack: DevStack) -> None:
    """The running-by-default sensor launches an ingestion run that writes demo rows."""
    url = dev_stack.url
    state = sensor_state(url, SENSOR)
    assert state["status"] == "RUNNING", "the Kafka sensor is not running by default in dev"

    try:
        run = poll(
            lambda: _successful_warehouse_run(url),
            timeout=150,
            what="a successful sensor-launched ingestion run into warehouse/...",
        )
    except TimeoutError:
        seen = [(r["status"], r["tags"].get(naming.TABLES_TAG)) for r in runs(url)]
        ticks = sensor_state(url, SENSOR)["ticks"][:3]
        pytest.fail(f"no successful run: runs={seen[:20]} ticks={ticks}\n{dev_stack.log_tail()}")

    assert run["jobName"] == "ingestion"
    assert run["tags"]["dagster/sensor_name"] == SENSOR
    tables = _tables(run)
    assert run["tags"][naming.INGESTION_TAG] == ("single" if len(tables) == 1 else "packed")
    if len(tables) == 1:
        assert run["tags"]["dagster/run_key"].startswith(tables[0] + "@")

    data_source, table_name = next(t for t in tables if t.startswith("warehouse/")).split("/", 1)
    events = materializations(url, [data_source, table_name])
    ours = [e for e in events if e["runId"] == run["runId"]]
    assert ours, f"no materialization of {data_source}/{table_name} by run {run['runId']}"
    metadata = ours[0]["metadata"]
    assert metadata["rows_written"] > 0, metadata
    assert metadata["messages"] >= metadata["rows_written"] + metadata["dead_letters"]
    assert metadata["lag_left"] >= 0
    document = load_document(demo_registry_path())
    topic = next(
        t
        for t in document.topics
        if t.table is not None and (t.table.data_source, t.table.name) == (data_source, table_name)
    )
    assert topic.table is not None
    status = httpx.get(dev_stack.api_url() + "/status", timeout=60).json()
    assert topic.name in [t["topic"] for t in status["tables"]]
    qualified = (
        f'"{topic.table.db_schema}"."{table_name}"'
        if topic.table.db_schema
        else (f'"{table_name}"')
    )
    engine = sa.create_engine(dev_stack.warehouse_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(sa.text(f"SELECT count(*) FROM {qualified}")).scalar_one()
    finally:
        engine.dispose()
    # Rows are never removed: the table holds at least what the first materialization wrote
    # (later runs of the sensor may have added more since).
    first = min(
        (e for e in events if e["metadata"].get("rows_written")),
        key=lambda e: float(e["timestamp"]),
        default=ours[0],
    )
    assert count >= first["metadata"]["rows_written"] > 0, (count, first)


WAREHOUSE_PIPELINES = {
    "daily-device-audio-summary": "daily_device_audio_summary",
    "hourly-transcription-counts": "transcription_counts_hourly",
}


def _successful_pipeline_run(url: str) -> dict[str, Any] | None:
    for run in runs(url, statuses=["SUCCESS"], tags={"dagster/sensor_name": FIRST_RUN_SENSOR}):
        if run["tags"].get("pipeline_platform/pipeline") in WAREHOUSE_PIPELINES:
            return run
    return None


def test_demo_batch_pipeline_runs_once_its_sources_are_ingested(dev_stack: DevStack) -> None:
    """The first-run sensor runs a demo batch pipeline whose cron is hours away; rows land."""
    url = dev_stack.url
    assert sensor_state(url, FIRST_RUN_SENSOR)["status"] == "RUNNING"
    names = {p.name for p in load_document(demo_registry_path()).pipelines}
    assert set(WAREHOUSE_PIPELINES) <= names
    try:
        run = poll(lambda: _successful_pipeline_run(url), timeout=180,
                   what="a successful demo pipeline run")  # fmt: skip
    except TimeoutError:
        seen = [(r["status"], r["jobName"], r["tags"].get("pipeline_platform/pipeline"))
                for r in runs(url, tags={"dagster/sensor_name": FIRST_RUN_SENSOR})]  # fmt: skip
        ticks = sensor_state(url, FIRST_RUN_SENSOR)["ticks"][:3]
        pytest.fail(f"no pipeline run: runs={seen} ticks={ticks}\n{dev_stack.log_tail()}")
    assert run["tags"]["pipeline_platform/trigger"] == "sensor"
    table = WAREHOUSE_PIPELINES[run["tags"]["pipeline_platform/pipeline"]]
    metadata = [e["metadata"] for e in materializations(url, ["warehouse", table])
                if e["runId"] == run["runId"]]  # fmt: skip
    assert metadata and metadata[0]["dagster/row_count"] > 0, metadata
    engine = sa.create_engine(dev_stack.warehouse_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    finally:
        engine.dispose()
    assert count == metadata[0]["dagster/row_count"]  # replace mode: exactly the run's rows
