"""Table pipelines on Dagster: job run and metadata, schedule, sensor, chaining, secrets."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from pipeline_platform.factory.builder import FactoryOptions, build_definitions
from pipeline_platform.factory.snapshot import RegistrySnapshot
from pipeline_platform.pipelines.service import list_runs
from pipeline_platform_tests.pipelines_helpers import document, pg, pipeline
from pipeline_platform_tests.servers import create_database

PASSWORD = "s3cr3t-Pa55word-xyz"


@pytest.fixture
def urls(postgres_admin_url: str) -> dict[str, str]:
    src, dst = create_database(postgres_admin_url), create_database(postgres_admin_url)
    pg(src, "CREATE TABLE events (id bigint PRIMARY KEY, kind text, at timestamptz)")
    pg(src, "INSERT INTO events VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-02'),"
       " (3, 'a', '2024-01-03')")  # fmt: skip
    # The test server trusts local connections: the password is sent and ignored.
    with_password = {k: v.replace("postgres@", f"postgres:{PASSWORD}@") for k, v in
                     {"SRC_URL": src, "DST_URL": dst}.items()}  # fmt: skip
    return with_password


def _registry(report_status: str = "paused") -> Any:
    copy = pipeline(
        [
            {"id": "read", "module": "sql_table_extractor",
             "config": {"data_source": "src", "table": "events", "incremental_column": "at",
                        "key": ["id"]}},
            {"id": "only_a", "module": "filter_rows",
             "config": {"column": "kind", "op": "eq", "value": "a"}},
            {"id": "write", "module": "sql_table_loader",
             "config": {"data_source": "dst", "table": "a_events", "mode": "upsert",
                        "key": ["id"]}},
        ],
        name="copy-a-events", mode="realtime", schedule=None,
    )  # fmt: skip
    report = pipeline(
        [
            {"id": "read", "module": "sql_table_extractor",
             "config": {"data_source": "dst", "table": "a_events"}},
            {"id": "count", "module": "aggregate",
             "config": {"group_by": ["kind"], "aggregations": {"id": "count"}}},
            {"id": "write", "module": "sql_table_loader",
             "config": {"data_source": "dst", "table": "a_counts", "mode": "replace"}},
        ],
        name="a-report", schedule="15 3 * * *", timezone="Europe/Oslo", status=report_status,
    )  # fmt: skip
    return document([copy, report], {"src": "SRC_URL", "dst": "DST_URL"})


def _defs(monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]) -> dg.Definitions:
    for name, value in urls.items():
        monkeypatch.setenv(name, value)
    snapshot = RegistrySnapshot(_registry(), "1", "registry")
    return build_definitions(snapshot, options=FactoryOptions(), environ={})


def test_assets_jobs_schedule_sensor_and_chain(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    repo = _defs(monkeypatch, urls).get_repository_def()
    graph = repo.asset_graph
    out, report = dg.AssetKey(["dst", "a_events"]), dg.AssetKey(["dst", "a_counts"])
    assert graph.get(out).parent_keys == {dg.AssetKey(["src", "events"])}
    assert graph.get(report).parent_keys == {out}  # the chain: report reads copy's output
    assert {"pipeline_copy_a_events", "pipeline_a_report"} <= {j.name for j in repo.get_all_jobs()}
    schedule = repo.get_schedule_def("pipeline_a_report_schedule")
    assert schedule.cron_schedule == "15 3 * * *"
    assert schedule.execution_timezone == "Europe/Oslo"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # paused
    sensor = repo.get_sensor_def("pipeline_copy_a_events_sensor")
    assert sensor.minimum_interval_seconds == 30
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_job_run_records_metadata_and_never_logs_the_password(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    defs = _defs(monkeypatch, urls)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("pipeline_copy_a_events")
        result = job.execute_in_process(
            instance=instance, tags={"pipeline_platform/trigger": "cli"}
        )
        assert result.success
        materialization = result.asset_materializations_for_node("run_table_pipelines")[0]
        meta = {k: v.value for k, v in materialization.metadata.items()}
        assert meta["dagster/row_count"] == 2 and meta["rows_read"] == 2
        assert meta["nodes/only_a/pushed_down"] is True
        assert meta["watermark/read/before"] == []
        assert meta["watermark/read/after"] == ["2024-01-03T00:00:00+00:00", 3]
        assert meta["trigger"] == "cli"
        assert "rows_per_second" in meta and "duration_seconds" in meta
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags["pipeline_platform/pipeline"] == "copy-a-events"
        records = instance.all_logs(result.run_id)
        text = "\n".join(str(record) for record in records) + str(run.run_config)
        assert "a_events" in text and PASSWORD not in text
    assert pg(urls["DST_URL"], "SELECT id FROM a_events ORDER BY id") == [(1,), (3,)]


def test_runs_launched_without_our_tags_are_listed(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    defs = _defs(monkeypatch, urls)
    keys = [dg.AssetKey(["dst", "a_events"]), dg.AssetKey(["dst", "a_counts"])]
    job = defs.resolve_implicit_global_asset_job_def()  # what the UI's Materialize launches
    with dg.instance_for_test() as instance:
        both = job.execute_in_process(instance=instance, asset_selection=keys)  # Materialize all
        report = job.execute_in_process(
            instance=instance,
            asset_selection=keys[1:],
            tags={"dagster/schedule_name": "nightly", "user": "ada@example.com"},
        )
        assert both.success and report.success
        copies, reports = list_runs(instance, "copy-a-events"), list_runs(instance, "a-report")
    assert [(r["run_id"], r["trigger"], r["records_processed"]) for r in copies] == [
        (both.run_id, "manual", 2)
    ]
    assert [(r["run_id"], r["trigger"], r["user"], r["records_processed"]) for r in reports] == [
        (report.run_id, "schedule", "ada@example.com", 1),
        (both.run_id, "manual", None, 1),
    ]


def test_first_run_sensor_runs_a_batch_pipeline_once_its_source_has_data(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    for name, value in urls.items():
        monkeypatch.setenv(name, value)
    snapshot = RegistrySnapshot(_registry(report_status="active"), "1", "registry")
    assert "table_pipelines_first_run" not in {
        s.name for s in build_definitions(snapshot, environ={}).get_repository_def().sensor_defs
    }
    options = FactoryOptions(pipelines_first_run=True)
    defs = build_definitions(snapshot, options=options, environ={})
    sensor = defs.get_repository_def().get_sensor_def("table_pipelines_first_run")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None = None) -> Any:
            return sensor(dg.build_sensor_context(instance=instance, definitions=defs,
                                                  cursor=cursor))  # fmt: skip

        assert isinstance(tick(), dg.SkipReason)  # a-report's source a_events has no data yet
        defs.resolve_job_def("pipeline_copy_a_events").execute_in_process(instance=instance)
        result = tick()
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests or []
        assert request.asset_selection == [dg.AssetKey(["dst", "a_counts"])]
        assert request.tags["pipeline_platform/trigger"] == "sensor"
        assert isinstance(tick(result.cursor), dg.SkipReason)  # once only
        run = defs.resolve_job_def("table_pipelines").execute_in_process(
            instance=instance, asset_selection=request.asset_selection, tags=request.tags
        )
        assert run.success
        assert [r["trigger"] for r in list_runs(instance, "a-report")] == ["sensor"]
    assert pg(urls["DST_URL"], "SELECT kind, id FROM a_counts") == [("a", 2)]


def test_realtime_sensor_launches_only_with_new_rows(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    defs = _defs(monkeypatch, urls)
    sensor = defs.get_repository_def().get_sensor_def("pipeline_copy_a_events_sensor")
    with dg.instance_for_test() as instance:

        def tick() -> list[dg.RunRequest]:
            context = dg.build_sensor_context(instance=instance, definitions=defs)
            result = sensor(context)
            return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []

        first = tick()
        assert len(first) == 1 and first[0].tags["pipeline_platform/trigger"] == "sensor"
        defs.resolve_job_def("pipeline_copy_a_events").execute_in_process(instance=instance)
        assert tick() == []  # everything up to the watermark is loaded
        pg(urls["SRC_URL"].replace(f":{PASSWORD}", ""),
           "INSERT INTO events VALUES (4, 'b', '2024-01-03')")  # a tie on the cursor  # fmt: skip
        assert len(tick()) == 1


def test_above_the_job_budget_runs_use_the_shared_job(
    monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]
) -> None:
    for name, value in urls.items():
        monkeypatch.setenv(name, value)
    snapshot = RegistrySnapshot(_registry(), "1", "registry")
    defs = build_definitions(snapshot, options=FactoryOptions(pipeline_job_budget=1), environ={})
    repo = defs.get_repository_def()
    assert "pipeline_copy_a_events" not in {j.name for j in repo.get_all_jobs()}
    schedule = repo.get_schedule_def("pipeline_a_report_schedule")
    assert schedule.job_name == "table_pipelines"
    with dg.build_schedule_context() as context:
        request = schedule.evaluate_tick(context).run_requests[0]  # type: ignore[index]
    assert request.asset_selection == [dg.AssetKey(["dst", "a_counts"])]
    assert request.tags["pipeline_platform/trigger"] == "schedule"
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("table_pipelines")
        # Both pipelines in one run: the report runs after the copy it reads (the chain).
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(["dst", "a_counts"]), dg.AssetKey(["dst", "a_events"])],
        )
        assert result.success
    assert pg(urls["DST_URL"], "SELECT count(*) FROM a_events") == [(2,)]
    assert pg(urls["DST_URL"], "SELECT kind, id FROM a_counts") == [("a", 2)]
