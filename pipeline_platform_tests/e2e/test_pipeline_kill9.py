"""A pipeline run killed with SIGKILL mid-load, then rerun, gives exactly the expected rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline_platform_tests.pipelines_helpers import pg
from pipeline_platform_tests.servers import create_database

ROWS = 400_000


def _child(registry: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline_platform_tests.pipeline_child", str(registry), "copy"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_kill_mid_load_then_rerun_is_exact(postgres_admin_url: str, tmp_path: Path) -> None:
    src, dst = create_database(postgres_admin_url), create_database(postgres_admin_url)
    pg(src, "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, v text)")
    pg(src, "INSERT INTO events SELECT g, timestamp '2024-01-01' + g * interval '1 second', "
       "md5(g::text) FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({
        "version": 1,
        "data_sources": [{"name": "src", "url_env": "SRC_URL"},
                         {"name": "dst", "url_env": "DST_URL"}],
        "pipelines": [{
            "name": "copy", "mode": "realtime",
            "graph": {"nodes": [
                {"id": "read", "module": "sql_table_extractor",
                 "config": {"data_source": "src", "table": "events", "incremental_column": "at",
                            "key": ["id"], "chunk_size": 20_000}},
                {"id": "write", "module": "sql_table_loader",
                 "config": {"data_source": "dst", "table": "events", "mode": "append"}},
            ], "edges": [["read", "write"]]},
        }],
    }))  # fmt: skip
    env = {"SRC_URL": src, "DST_URL": dst}

    # First run: killed after some chunks were written inside the run's transaction.
    child = _child(registry, env)
    assert child.stdout is not None
    for line in child.stdout:
        count = line.split()[1] if line.startswith("read: ") else ""
        if count.isdigit() and int(count) >= 100_000:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    tables = pg(dst, "SELECT count(*) FROM pg_tables WHERE tablename = 'events'")
    # Nothing of the killed run is visible: not even the table it created.
    assert tables == [(0,)]

    # Rerun: everything, exactly once.
    rerun = _child(registry, env)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    assert pg(dst, "SELECT count(*), count(DISTINCT id), sum(id) FROM events") == [
        (ROWS, ROWS, ROWS * (ROWS + 1) // 2)
    ]

    # New rows, one more killed run, then a rerun: only the new rows, once.
    pg(src, "INSERT INTO events SELECT g, timestamp '2024-01-01' + g * interval '1 second', "
       "'new' FROM generate_series(%s, %s) g", (ROWS + 1, 2 * ROWS))  # fmt: skip
    child = _child(registry, env)
    assert child.stdout is not None
    for line in child.stdout:
        count = line.split()[1] if line.startswith("read: ") else ""
        if count.isdigit() and int(count) >= 100_000:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert pg(dst, "SELECT count(*) FROM events") == [(ROWS,)]
    rerun = _child(registry, env)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    assert f"done {ROWS}" in out
    assert pg(dst, "SELECT count(*), count(DISTINCT id), max(id) FROM events") == [
        (2 * ROWS, 2 * ROWS, 2 * ROWS)
    ]
