"""``modules``, ``module``, ``pipeline run | runs | preview`` and ``registry rollback``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform_tests.pipelines_helpers import pg
from pipeline_platform_tests.servers import create_database


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _registry(tmp_path: Path, table: str = "daily") -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "data_sources": [
            {"name": "src", "kind": "postgresql", "url_env": "SRC_URL"},
            {"name": "dst", "kind": "postgresql", "url_env": "DST_URL"},
        ],
        "presets": [{"name": "big", "module": "filter_rows",
                     "config": {"column": "n", "op": "ge", "value": 2}}],
        "pipelines": [{
            "name": "daily", "schedule": "0 1 * * *",
            "graph": {
                "nodes": [
                    {"id": "read", "module": "sql_table_extractor",
                     "config": {"data_source": "src", "table": "t"}},
                    {"id": "big", "module": "filter_rows", "preset": "big"},
                    {"id": "twice", "module": "derive_column",
                     "config": {"column": "m", "expression": "n * 2"}},
                    {"id": "write", "module": "sql_table_loader",
                     "config": {"data_source": "dst", "table": table}},
                ],
                "edges": [["read", "big"], ["big", "twice"], ["twice", "write"]],
            },
        }],
    }  # fmt: skip
    path = tmp_path / f"registry_{table}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def stack(
    tmp_path: Path, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    src, dst = create_database(postgres_admin_url), create_database(postgres_admin_url)
    pg(src, "CREATE TABLE t (n bigint, label text)")
    pg(src, "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"SRC_URL": src, "DST_URL": dst, "DAGSTER_HOME": str(home),
           "PIPELINE_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_modules_and_module(
    capsys: pytest.CaptureFixture[str], stack: dict[str, str], tmp_path: Path
) -> None:
    assert run(capsys, "registry", "import", str(_registry(tmp_path)))[0] == 0
    code, out, _ = run(capsys, "modules", "--json")
    modules = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and len(modules) == 19
    assert modules["filter_rows"]["usageCount"] == 1
    assert modules["join"]["usageCount"] == 0
    code, out, _ = run(capsys, "module", "sql_table_loader")
    assert code == 0 and "requiredConnections: postgresql, timescaledb, sqlite" in out
    code, _, err = run(capsys, "module", "nope")
    assert code == 1 and err == "error: unknown module 'nope'\n"


def test_preview_writes_nothing(
    capsys: pytest.CaptureFixture[str], stack: dict[str, str], tmp_path: Path
) -> None:
    run(capsys, "registry", "import", str(_registry(tmp_path)))
    code, out, _ = run(capsys, "pipeline", "preview", "daily", "--rows", "1", "--json")
    assert code == 0
    nodes = {n["node"]: n for n in json.loads(out)["nodes"]}
    assert nodes["read"]["rows_out"] == 2  # the filter is pushed into the read
    assert nodes["twice"]["columns"] == ["n", "label", "m"]
    assert nodes["twice"]["rows"] == [[2, "two", 4]]
    assert pg(stack["DST_URL"], "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]
    code, out, _ = run(capsys, "pipeline", "preview", "daily", "--node", "twice")
    assert code == 0 and out.startswith("== twice (derive_column): 2 in, 2 out")


def test_run_and_runs(
    capsys: pytest.CaptureFixture[str], stack: dict[str, str], tmp_path: Path
) -> None:
    run(capsys, "registry", "import", str(_registry(tmp_path)))
    code, out, err = run(capsys, "pipeline", "run", "daily", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "SUCCESS" and result["rows_written"] == 2
    assert pg(stack["DST_URL"], "SELECT n, m FROM daily ORDER BY n") == [(2, 4), (3, 6)]
    code, out, _ = run(capsys, "pipeline", "runs", "daily", "--json")
    runs = json.loads(out)["runs"]
    assert code == 0 and len(runs) == 1
    assert runs[0]["status"] == "SUCCESS" and runs[0]["trigger"] == "cli"
    assert runs[0]["records_processed"] == 2 and runs[0]["records_failed"] == 0


def test_missing_variable_is_one_line(
    capsys: pytest.CaptureFixture[str],
    stack: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(capsys, "registry", "import", str(_registry(tmp_path)))
    monkeypatch.delenv("SRC_URL")
    code, _, err = run(capsys, "pipeline", "preview", "daily")
    assert code == 1
    assert err == "error: data source 'src': environment variable SRC_URL is not set\n"


def test_rollback(
    capsys: pytest.CaptureFixture[str], stack: dict[str, str], tmp_path: Path
) -> None:
    run(capsys, "registry", "import", str(_registry(tmp_path)))
    run(capsys, "registry", "import", str(_registry(tmp_path, "other")))
    code, out, _ = run(capsys, "registry", "rollback", "1", "--dry-run")
    assert code == 0 and "~ pipeline daily: graph" in out and "dry run" in out
    code, out, _ = run(capsys, "registry", "rollback", "1")
    assert code == 0 and out.strip().endswith("rolled back to revision 1 as revision 3")
    code, out, _ = run(capsys, "registry", "export")
    assert "table: daily" in out and "table: other" not in out
    code, _, err = run(capsys, "registry", "rollback", "9")
    assert code == 1 and err == "error: registry revision 9 does not exist\n"
