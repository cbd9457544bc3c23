"""The ``registry`` commands end to end, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform.dev.stack import demo_registry_path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


@pytest.fixture
def registry(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", database_url)
    return database_url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_export_round_trip_is_byte_identical(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "registry", "import", str(demo_registry_path()), "--actor", "ana")
    assert code == 0
    assert out.splitlines()[-1] == "imported as revision 1"
    first = tmp_path / "first.yaml"
    assert run(capsys, "registry", "export", str(first))[0] == 0
    assert run(capsys, "registry", "import", str(first))[1] == "no changes\n"
    code, second, _ = run(capsys, "registry", "export")
    assert code == 0
    assert second == first.read_text()
    history = json.loads(run(capsys, "registry", "history", "--json")[1])
    assert [(h["revision"], h["actor"]) for h in history] == [(1, "ana")]
    assert len(history[0]["summary"]["topics"]["added"]) == 66


def test_dry_run_prints_the_diff_and_writes_nothing(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "registry", "import", str(FIXTURE))[0] == 0
    data: dict[str, Any] = yaml.safe_load(FIXTURE.read_text())
    data["topics"][0]["description"] = "changed"
    data["topics"].append({"name": "device.extra", "partitions": 2})
    del data["flows"][1]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    code, out, _ = run(capsys, "registry", "import", str(changed), "--dry-run")
    assert code == 0
    assert out.splitlines() == [
        "+ topic device.extra",
        "~ topic device.audio.raw: description",
        "- flow network-monitoring",
        "dry run: nothing written",
    ]
    assert len(json.loads(run(capsys, "registry", "history", "--json")[1])) == 1
    code, out, _ = run(capsys, "registry", "import", str(changed), "--actor", "bo")
    assert out.splitlines()[-1] == "imported as revision 2"
    topics = json.loads(run(capsys, "topics", "--json")[1])
    assert "device.extra" in [t["topic_name"] for t in topics["topics"]]


def test_refused_import_writes_nothing_and_reports_every_problem(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "registry", "import", str(FIXTURE))[0] == 0
    before = run(capsys, "registry", "export")[1]
    data: dict[str, Any] = yaml.safe_load(FIXTURE.read_text())
    data["topics"][0]["table"]["name"] = "x; drop table y"
    data["flows"][0]["stages"][0]["inputs"] = ["nowhere"]
    data["topics"].append({"name": "device.new"})
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    code, out, err = run(capsys, "registry", "import", str(bad))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "error: flows[0].stages[0].inputs[0]: unknown topic 'nowhere'"
    assert lines[1].startswith("error: topics[0].table.name: not a safe SQL identifier")
    assert len(lines) == 2
    assert run(capsys, "registry", "export")[1] == before
    assert len(json.loads(run(capsys, "registry", "history", "--json")[1])) == 1


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "validate", str(FIXTURE))
    assert code == 0
    assert out == (
        "valid: 5 topics, 3 tables, 13 mappings, 2 flows, 3 stages, 2 dataSources, 1 pipelines\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("topics:\n  - name: [unclosed\n")
    code, out, err = run(capsys, "registry", "validate", str(broken))
    assert code == 1
    assert err.startswith("error: line ") and "invalid YAML" in err
    code, out, _ = run(capsys, "registry", "validate", str(broken.with_name("missing.yaml")))
    assert code == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["registry", "import"])
    assert exit_info.value.code == 2
