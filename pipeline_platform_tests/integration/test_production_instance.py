"""The production ``dagster.yaml`` against a real PostgreSQL server.

A temporary ``DAGSTER_HOME`` holds a verbatim copy of the top-level ``dagster.yaml``; the
``DAGSTER_PG_*`` variables it reads are split out of the ``postgres_url`` fixture. A toy job runs
on that instance and its run and events are read back from PostgreSQL with plain SQL.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, job, op
from dagster._core.events import DagsterEventType
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._utils.tags import TagConcurrencyLimitsCounter
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_YAML = REPO_ROOT / "dagster.yaml"
TABLE_TAG = "pipeline_platform/table"
INGESTION_TAG = "pipeline_platform/ingestion"


@op
def count_rows() -> int:
    return 3


@op
def double(rows: int) -> int:
    return rows * 2


@job
def toy_ingestion():
    double(count_rows())


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def production_instance(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    url = make_url(postgres_url)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


def test_production_yaml_reads_credentials_from_env_only() -> None:
    config = yaml.safe_load(PRODUCTION_YAML.read_text())
    pg = config["storage"]["postgres"]["postgres_db"]
    assert pg == {
        "username": {"env": "DAGSTER_PG_USERNAME"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "port": {"env": "DAGSTER_PG_PORT"},
    }


def test_runs_and_events_are_stored_in_postgres(
    production_instance: DagsterInstance, postgres_url: str
) -> None:
    instance = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    tags = {TABLE_TAG: "warehouse/device_audio_raw"}
    result = toy_ingestion.execute_in_process(instance=instance, tags=tags)
    assert result.success
    assert result.output_for_node("double") == 6
    run_id = result.run_id

    with psycopg.connect(_conninfo(postgres_url)) as conn:
        status, job_name = conn.execute(
            "SELECT status, pipeline_name FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
        assert (status, job_name) == ("SUCCESS", "toy_ingestion")
        tag_value = conn.execute(
            "SELECT value FROM run_tags WHERE run_id = %s AND key = %s", (run_id, TABLE_TAG)
        ).fetchone()
        assert tag_value == ("warehouse/device_audio_raw",)
        event_types = {
            row[0]
            for row in conn.execute(
                "SELECT dagster_event_type FROM event_logs WHERE run_id = %s", (run_id,)
            )
        }
    expected = {
        DagsterEventType.RUN_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.RUN_SUCCESS,
    }
    # The stored names are the enum values (PIPELINE_START / PIPELINE_SUCCESS for runs).
    assert {event.value for event in expected} <= event_types

    # A second instance built from the same yaml sees the same run: the state is shared
    # between webserver, daemon and code location through PostgreSQL, not the local disk.
    other = DagsterInstance.get()
    try:
        stored = other.get_run_by_id(run_id)
        assert stored is not None
        assert stored.status == DagsterRunStatus.SUCCESS
    finally:
        other.dispose()


def test_runs_are_queued_with_one_run_per_table(production_instance: DagsterInstance) -> None:
    instance = production_instance
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 25
    assert list(queue.tag_concurrency_limits) == [
        {"key": INGESTION_TAG, "limit": 8},
        {"key": TABLE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
    ]

    # Runs stored in PostgreSQL: one ingestion of table A in progress, two more waiting behind
    # it (one for A, one for B). The configured limits block A's second run only. (The waiting
    # runs are NOT_STARTED: QUEUED runs need a code-location origin, which a test job lacks.)
    def make_run(table: str, status: DagsterRunStatus):
        return instance.create_run_for_job(toy_ingestion, tags={TABLE_TAG: table}, status=status)

    make_run("warehouse/a", DagsterRunStatus.STARTED)
    queued_a = make_run("warehouse/a", DagsterRunStatus.NOT_STARTED)
    queued_b = make_run("warehouse/b", DagsterRunStatus.NOT_STARTED)

    in_progress = list(instance.get_runs(RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES)))
    assert len(in_progress) == 1
    counter = TagConcurrencyLimitsCounter(list(queue.tag_concurrency_limits), in_progress)
    assert counter.is_blocked(instance.get_run_by_id(queued_a.run_id))
    assert not counter.is_blocked(instance.get_run_by_id(queued_b.run_id))


def test_at_most_eight_sensor_ingestion_runs_at_once(production_instance: DagsterInstance) -> None:
    """Packed and one-table sensor runs share the `pipeline_platform/ingestion` limit of 8."""
    instance = production_instance
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None

    def make_run(kind: str, status: DagsterRunStatus):
        tags = {INGESTION_TAG: kind, "pipeline_platform/tables": f"warehouse/{uuid.uuid4().hex}"}
        return instance.create_run_for_job(toy_ingestion, tags=tags, status=status)

    for n in range(8):
        make_run("packed" if n % 2 else "single", DagsterRunStatus.STARTED)
    waiting = make_run("packed", DagsterRunStatus.NOT_STARTED)
    in_progress = list(instance.get_runs(RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES)))
    counter = TagConcurrencyLimitsCounter(list(queue.tag_concurrency_limits), in_progress)
    assert counter.is_blocked(instance.get_run_by_id(waiting.run_id))
    other = instance.create_run_for_job(toy_ingestion, status=DagsterRunStatus.NOT_STARTED)
    assert not counter.is_blocked(instance.get_run_by_id(other.run_id))  # e.g. a pipeline run


def test_retries_monitoring_freshness_and_telemetry(production_instance: DagsterInstance) -> None:
    instance = production_instance
    assert instance.run_retries_enabled
    assert instance.run_retries_max_retries == 3
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 300
    assert not instance.telemetry_enabled
    assert instance.get_settings("freshness") == {"enabled": True}
    assert instance.get_settings("sensors")["use_threads"] is True
