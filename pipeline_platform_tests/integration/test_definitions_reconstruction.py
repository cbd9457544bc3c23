"""Run and step workers rebuild the definitions from the captured snapshot: one registry read.

This module is also the code location the test runs (``counting_defs``): it counts every
registry read in a file and ingests with a fake, so that a real multi-process run needs no
broker or warehouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

from pipeline_platform.config import load_settings
from pipeline_platform.factory import loader
from pipeline_platform.factory.builder import build_definitions

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
COUNTER_ENV = "PP_TEST_REGISTRY_READS"
_original_read = loader.read_registry


def _counting_read(*args: Any, **kwargs: Any) -> Any:
    with open(os.environ[COUNTER_ENV], "a", encoding="utf-8") as out:
        out.write(f"read pid={os.getpid()}\n")
    return _original_read(*args, **kwargs)


def fake_ingest(topic: Any, **kwargs: Any) -> SimpleNamespace:
    """Pretend to ingest, recording the worker process."""
    with open(os.environ[COUNTER_ENV], "a", encoding="utf-8") as out:
        out.write(f"ingest {topic.name} pid={os.getpid()}\n")
    return SimpleNamespace(
        rows_written=1,
        dead_letters=0,
        messages=1,
        seconds=0.01,
        messages_per_second=100.0,
        lag_left=0,
        offsets={0: (0, 1)},
    )


@dg.definitions
def counting_defs() -> dg.Definitions:
    """The factory's definitions with registry reads counted and a fake ingestion."""
    loader.read_registry = _counting_read  # type: ignore[assignment]
    return build_definitions(loader.load_snapshot(load_settings()), ingest=fake_ingest)


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n"
        "  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_REGISTRY_FILE": str(FIXTURE),
        COUNTER_ENV: str(tmp_path / "reads.log"),
    }


def _log(env: dict[str, str]) -> list[str]:
    path = Path(env[COUNTER_ENV])
    return path.read_text().splitlines() if path.exists() else []


def _dagster() -> str:
    return str(Path(sys.executable).with_name("dagster"))


@pytest.mark.timeout(300)
def test_job_execute_runs_steps_in_process_and_reads_registry_once(tmp_path: Path) -> None:
    """The CLI loads the code, then reconstructs it to execute: one registry read in all."""
    env = _env(tmp_path)
    out = subprocess.run(
        [_dagster(), "job", "execute", "-f", __file__, "-a", "counting_defs", "-j", "ingestion"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = _log(env)
    reads = [line for line in log if line.startswith("read")]
    ingests = [line for line in log if line.startswith("ingest")]
    assert len(ingests) == 3
    cli_pid = reads[0].split("pid=")[1]
    # The in-process executor: no step worker process imports Dagster again.
    assert all(line.split("pid=")[1] == cli_pid for line in ingests)
    assert len(reads) == 1, log


@pytest.mark.timeout(300)
def test_asset_materialize_reads_registry_once(tmp_path: Path) -> None:
    """``dagster asset materialize`` loads, then reconstructs without metadata: still one read."""
    env = _env(tmp_path)
    select = "warehouse/device_audio_raw,warehouse/device_network_wifi_raw"
    # As users run it: ``-m`` without ``-a`` (the CLI then reconstructs without metadata).
    command = [_dagster(), "asset", "materialize", "-m", __name__]
    out = subprocess.run(
        [*command, "--select", select],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = _log(env)
    reads = [line for line in log if line.startswith("read")]
    ingests = [line for line in log if line.startswith("ingest")]
    assert len(ingests) == 2
    assert len(reads) == 1, log


@pytest.mark.timeout(300)
def test_launched_run_through_code_server_reads_registry_once(tmp_path: Path) -> None:
    """Code server → run worker → step worker, as in production."""
    env = _env(tmp_path)
    out = subprocess.run(
        [_dagster(), "job", "launch", "-f", __file__, "-a", "counting_defs", "-j", "ingestion"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    deadline = time.monotonic() + 180
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        while True:
            [run] = instance.get_runs(limit=1)
            if run.is_finished or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
    log = _log(env)
    reads = [line for line in log if line.startswith("read")]
    ingests = [line for line in log if line.startswith("ingest")]
    assert len(ingests) == 3
    assert len(reads) == 1, log
    assert reads[0].split("pid=")[1] != ingests[0].split("pid=")[1]  # code server ≠ step worker
