"""The read commands: JSON and table output, exit codes, and loading from a real registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pipeline_platform
from pipeline_platform.cli import query_commands
from pipeline_platform.cli.main import main
from pipeline_platform.config import Settings
from pipeline_platform.registry import queries
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import load_document

SMALL = Path(__file__).parent.parent / "fixtures" / "small_registry.yaml"
DEMO = Path(pipeline_platform.__file__).parent / "dev" / "demo_registry.yaml"


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> RegistryDocument:
    """The small registry, served to the commands instead of the registry database."""
    document = load_document(SMALL)

    def fake_loader(settings: Settings) -> RegistryDocument:
        del settings
        return document

    monkeypatch.setattr(query_commands, "load_registry_document", fake_loader)
    return document


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


Question = Callable[[RegistryDocument], Any]

COMMANDS: list[tuple[list[str], Question]] = [
    (["flows"], lambda d: queries.flows(d)),
    (["flow", "audio-processing"], lambda d: queries.flow(d, "audio-processing")),
    (["stages"], lambda d: queries.stages(d)),
    (["stages", "--flow", "network-monitoring"], lambda d: queries.stages(d, "network-monitoring")),
    (["topics"], lambda d: queries.topics(d)),
    (["topology"], lambda d: queries.topology(d)),
    (["dependencies"], lambda d: queries.dependencies(d)),
    (["lineage", "device.audio.raw"], lambda d: queries.lineage(d, "device.audio.raw")),
    (["service", "silero-vad"], lambda d: queries.service(d, "silero-vad")),
    (["modules"], lambda d: queries.modules(document=d)),
]
COMMAND_IDS = [" ".join(argv) for argv, _ in COMMANDS]


@pytest.mark.parametrize(("argv", "question"), COMMANDS, ids=COMMAND_IDS)
def test_json_output_is_the_query_answer(
    small: RegistryDocument, capsys: pytest.CaptureFixture[str], argv: list[str], question: Question
) -> None:
    code, out, err = run(capsys, *argv, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == question(small)


@pytest.mark.parametrize(("argv", "question"), COMMANDS, ids=COMMAND_IDS)
def test_table_output(
    small: RegistryDocument, capsys: pytest.CaptureFixture[str], argv: list[str], question: Question
) -> None:
    del question
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert out.strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_flows_table(small: RegistryDocument, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flows")
    assert code == 0
    assert out == (
        "FLOW                PRIORITY  ACTIVE  STAGES  TOPICS  DESCRIPTION\n"
        "audio-processing    high      yes     2       4       Audio data processing pipeline\n"
        "network-monitoring  normal    yes     1       1       Network scans\n"
    )


def test_lineage_table(small: RegistryDocument, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lineage", "device.audio.raw")
    assert code == 0
    assert out == (
        "topic: device.audio.raw\n"
        "ROLE           NAME                        FLOW              STAGE\n"
        "api endpoint   /audio/upload               -                 -\n"
        "api endpoint   /audio/stream/{device_id}   -                 -\n"
        "consumer       silero-vad                  audio-processing  vad-processing\n"
        "storage table  warehouse/device_audio_raw  -                 -\n"
    )


def test_stages_table(small: RegistryDocument, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stages", "--flow", "audio-processing")
    assert code == 0
    assert out.splitlines() == [
        "FLOW              ORDER  STAGE           SERVICE     INPUTS"
        "                    OUTPUTS                       ERRORS",
        "audio-processing  1      vad-processing  silero-vad  device.audio.raw"
        "          media.audio.vad_filtered      errors.audio.vad",
        "audio-processing  2      speech-to-text  kyutai-stt  media.audio.vad_filtered"
        "  media.text.transcribed.words  -",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flow", "nope"], "unknown flow 'nope'"),
        (["stages", "--flow", "nope"], "unknown flow 'nope'"),
        (["lineage", "no.such.topic"], "unknown topic 'no.such.topic'"),
        (["service", "nope"], "unknown service 'nope'"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_unknown_names_exit_1_with_one_line(
    small: RegistryDocument,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
    as_json: bool,
) -> None:
    code, out, err = run(capsys, *argv, *(["--json"] if as_json else []))
    assert (code, out, err) == (1, "", f"error: {message}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["flow"],
        ["lineage"],
        ["service"],
        ["flows", "extra"],
        ["topics", "--bogus"],
        ["stages", "--flow"],
    ],
)
def test_bad_usage_exits_2(
    small: RegistryDocument, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_unreadable_registry_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, out, err = run(capsys, "flows", "--json")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert err.startswith("error: cannot read the registry at sqlite:///")


def test_commands_read_an_imported_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["registry", "import", str(DEMO)]) == 0
    capsys.readouterr()
    demo = load_document(DEMO)
    for argv, question in COMMANDS[:3] + COMMANDS[4:7] + COMMANDS[9:]:
        code, out, err = run(capsys, *argv, "--json")
        assert (code, err) == (0, ""), argv
        assert json.loads(out) == question(demo), argv
    code, out, _ = run(capsys, "lineage", "media.text.transcribed.words", "--json")
    assert code == 0
    assert json.loads(out) == queries.lineage(demo, "media.text.transcribed.words")
