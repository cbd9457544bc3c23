"""The Dagster CLI runs a table pipeline: ``dagster asset materialize`` (the UI's Materialize)
and ``dagster job execute`` on the pipeline's job, each in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.pipelines_helpers import pg
from pipeline_platform_tests.servers import create_database


def test_dagster_cli_runs_a_pipeline(postgres_admin_url: str, tmp_path: Path) -> None:
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
    env = {**os.environ, "DAGSTER_HOME": str(home), "PIPELINE_REGISTRY_URL": registry_url,
           "SRC_URL": src, "DST_URL": dst}  # fmt: skip
    base = [sys.executable, "-m", "dagster"]
    where = ["-m", "pipeline_platform.definitions"]
    commands = [
        [*base, "asset", "materialize", *where, "--select", "dst/t_copy"],
        [*base, "job", "execute", *where, "-j", "pipeline_copy_t"],
    ]
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert pg(dst, "SELECT id, v FROM t_copy ORDER BY id") == [(1, "a"), (2, "b")]
