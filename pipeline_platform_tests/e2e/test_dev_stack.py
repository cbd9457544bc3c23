"""End to end: ``pipeline-platform dev`` ingests demo events through the Kafka sensor.

One stack (``dev_stack``: local broker, demo registry in SQLite, PostgreSQL warehouse, demo
producer at 300 events/s, ``dagster dev`` with its daemon) is observed only through the
webserver's GraphQL API, then cross-checked with SQL. Ctrl-C shutdown of the whole stack is
asserted when the shared fixture is torn down (see ``dagster_dev.dev_stack``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pipeline_platform.dev.stack import demo_registry_path
from pipeline_platform.factory import naming
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.e2e.dagster_dev import (
    DevStack,
    dev_stack,
    materializations,
    poll,
    runs,
    sensor_state,
)

__all__ = ["dev_stack"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SENSOR = "kafka_lag_sensor"


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
