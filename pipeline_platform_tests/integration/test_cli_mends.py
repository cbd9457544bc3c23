"""CLI mends: PIPELINE_REGISTRY_FILE honoured, read-only commands never migrate, no hidden
ImportError dropping a command."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from pipeline_platform.cli import main as cli_main
from pipeline_platform.registry.database import create_registry_engine
from pipeline_platform.registry.validation import load_document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_main.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tables(url: str) -> list[str]:
    engine = create_registry_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_read_commands_honour_the_registry_file(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the Dagster code location does: the file wins over the (empty) registry database."""
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", database_url)
    monkeypatch.setenv("PIPELINE_REGISTRY_FILE", str(FIXTURE))
    code, out, err = run(capsys, "topics", "--json")
    assert (code, err) == (0, "")
    names = [t["topic_name"] for t in json.loads(out)["topics"]]
    assert names == sorted(t.name for t in load_document(FIXTURE).topics)
    assert _tables(database_url) == []  # the database was not even touched

    monkeypatch.delenv("PIPELINE_REGISTRY_FILE")
    code, _, err = run(capsys, "topics", "--json")
    assert code == 1 and "cannot read the registry" in err


def test_a_refused_registry_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntopics:\n  - name: x\n    partitions: zero\n")
    monkeypatch.setenv("PIPELINE_REGISTRY_FILE", str(bad))
    code, _, err = run(capsys, "flows")
    assert code == 1 and "topics[0].partitions" in err


@pytest.mark.parametrize("command", [("registry", "export"), ("registry", "history")])
def test_read_only_commands_do_not_migrate(
    command: tuple[str, ...],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", database_url)
    code, out, err = run(capsys, *command)
    assert code == 1 and out == ""
    assert "has no registry schema" in err and "registry init" in err
    assert _tables(database_url) == []

    assert run(capsys, "registry", "import", str(FIXTURE), "--actor", "ana")[0] == 0
    code, out, err = run(capsys, *command)
    assert (code, err) == (0, "")
    assert out.strip()


def test_every_command_module_is_registered() -> None:
    parser = cli_main.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("registry", "flows", "dlq", "warehouse", "dev", "serve", "status"):
        assert name in commands, name


def test_an_import_error_in_a_command_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module set to None in sys.modules raises ImportError when imported.
    import pipeline_platform.cli

    monkeypatch.setitem(sys.modules, "pipeline_platform.cli.status_command", None)
    monkeypatch.delattr(pipeline_platform.cli, "status_command")
    with pytest.raises(ImportError):
        importlib.reload(cli_main)
    monkeypatch.undo()
    importlib.reload(cli_main)
