"""The Dagster CLI and the UI run a table pipeline.

``dagster asset materialize`` and ``dagster job execute`` run it in their own process;
``dagster job launch`` and the UI's Materialize (the webserver's ``launchPipelineExecution``
mutation with an asset selection on the implicit asset job, as the UI sends it) run it through
``dagster dev``'s run queue, daemon and run launcher, and ``pipeline-platform pipeline runs``
then lists both runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.e2e.dagster_dev import dagster_dev
from pipeline_platform_tests.e2e.graphql_client import graphql, poll, runs
from pipeline_platform_tests.pipelines_helpers import pg
from pipeline_platform_tests.servers import create_database

DAGSTER = [sys.executable, "-m", "dagster"]
WHERE = ["-m", "pipeline_platform.definitions"]

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def _copy_pipeline(postgres_admin_url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Return the destination URL and the environment of a registry with pipeline ``copy-t``."""
    src, dst = create_database(postgres_admin_url), create_database(postgres_admin_url)
    pg(src, "CREATE TABLE t (id bigint, v text)")
    pg(src, "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL)")
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1,
        "data_sources": [{"name": "src", "url_env": "SRC_URL"},
                         {"name": "dst", "url_env": "DST_URL"}],
        "pipelines": [{"name": "copy-t", "schedule": "0 3 * * *", "graph": {
            "nodes": [
                {"id": "read", "module": "sql_table_extractor",
                 "config": {"data_source": "src", "table": "t"}},
                {"id": "v", "module": "filter_rows", "config": {"column": "v", "op": "not_null"}},
                {"id": "write", "module": "sql_table_loader",
                 "config": {"data_source": "dst", "table": "t_copy", "mode": "upsert",
                            "key": ["id"]}},
            ],
            "edges": [["read", "v"], ["v", "write"]],
        }}],
    }))  # fmt: skip
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_registry_engine(registry_url)
    upgrade_registry(engine)
    import_document(engine, load_document(path), actor="test")
    engine.dispose()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    return dst, {"DAGSTER_HOME": str(home), "PIPELINE_REGISTRY_URL": registry_url,
                 "SRC_URL": src, "DST_URL": dst}  # fmt: skip


def test_dagster_cli_runs_a_pipeline(postgres_admin_url: str, tmp_path: Path) -> None:
    dst, env = _copy_pipeline(postgres_admin_url, tmp_path)
    commands = [
        [*DAGSTER, "asset", "materialize", *WHERE, "--select", "dst/t_copy"],
        [*DAGSTER, "job", "execute", *WHERE, "-j", "pipeline_copy_t"],
    ]
    for command in commands:
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=240)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert pg(dst, "SELECT id, v FROM t_copy ORDER BY id") == [(1, "a"), (2, "b")]


def _finished(url: str, run_id: str) -> str | None:
    found = [r for r in runs(url) if r["runId"] == run_id]
    status = found[0]["status"] if found else None
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_job_launch_and_ui_materialize_run_through_dagster_dev(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    dst, env = _copy_pipeline(postgres_admin_url, tmp_path)
    src = env["SRC_URL"]
    with dagster_dev(Path(env["DAGSTER_HOME"]), env=env) as server:
        # (a) `dagster job launch` queues a run; dagster dev's daemon dequeues and launches it.
        done = subprocess.run([*DAGSTER, "job", "launch", *WHERE, "-j", "pipeline_copy_t"],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=240)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        launched = poll(lambda: runs(server.url), timeout=60, what="the launched run")[0]
        assert launched["jobName"] == "pipeline_copy_t"
        status = poll(lambda: _finished(server.url, launched["runId"]), timeout=240,
                      what="the launched run to finish")  # fmt: skip
        assert status == "SUCCESS", server.log_tail()
        assert pg(dst, "SELECT id, v FROM t_copy ORDER BY id") == [(1, "a"), (2, "b")]

        # (b) The UI's Materialize button on dst/t_copy: the mutation the UI sends.
        pg(src, "INSERT INTO t VALUES (4, 'd')")
        params = {
            "mode": "default",
            "executionMetadata": {"tags": []},
            "runConfigData": {},
            "selector": {
                "repositoryLocationName": "pipeline_platform.definitions",
                "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": ["dst", "t_copy"]}],
                "assetCheckSelection": [],
            },
        }
        answer = graphql(server.url, LAUNCH, {"executionParams": params})
        launch = answer["launchPipelineExecution"]
        assert launch["__typename"] == "LaunchRunSuccess", launch
        ui_run = launch["run"]["runId"]
        status = poll(lambda: _finished(server.url, ui_run), timeout=240,
                      what="the UI's run to finish")  # fmt: skip
        assert status == "SUCCESS", server.log_tail()
        assert pg(dst, "SELECT id FROM t_copy ORDER BY id") == [(1,), (2,), (4,)]
        tags = next(r["tags"] for r in runs(server.url) if r["runId"] == ui_run)
        assert tags["pipeline_platform/pipeline"] == "copy-t", tags  # added by the asset body

    listed = subprocess.run(
        [str(Path(sys.executable).with_name("pipeline-platform")), "pipeline", "runs", "copy-t",
         "--json"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert set(found) == {launched["runId"], ui_run}
    assert found[ui_run]["trigger"] == "manual" and found[ui_run]["status"] == "SUCCESS"
    assert found[ui_run]["records_processed"] == 3
    assert found[launched["runId"]]["records_processed"] == 2
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        queued = instance.get_records_for_run(
            launched["runId"], of_type=dg.DagsterEventType.RUN_ENQUEUED
        ).records
    # Only the daemon takes runs off the queue: the run succeeded, so the daemon launched it.
    assert queued, "the launched run did not go through the daemon's run queue"
