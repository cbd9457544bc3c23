"""``pause`` / ``resume``: a registry revision each, honoured by the Kafka sensor and schedules.

Real parts: a SQLite registry, the mock broker over TCP, a PostgreSQL warehouse, the factory's
translator and the Kafka sensor's real tick.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform.factory.builder import build_definitions
from pipeline_platform.factory.snapshot import RegistrySnapshot
from pipeline_platform.factory.translator import RegistryTranslator
from pipeline_platform.registry.database import create_registry_engine
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.store import read_document
from pipeline_platform_tests.integration.test_sensor_lag import fill, tick

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


@pytest.fixture
def instance() -> Any:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _document(registry_url: str) -> RegistryDocument:
    engine = create_registry_engine(registry_url)
    try:
        return read_document(engine)
    finally:
        engine.dispose()


def _requested(document: RegistryDocument, names: set[str], **tick_args: Any) -> list[str]:
    targets = [t for t in RegistryTranslator().translate(document).tables if t.topic.name in names]
    assert len(targets) == len(names)
    result = tick(targets, **tick_args)
    return sorted(request.tags["pipeline_platform/topic"] for request in result.run_requests or [])


def test_pause_and_resume_write_revisions_and_the_sensor_skips_paused_tables(
    tmp_path: Path,
    postgres_url: str,
    kafka_bootstrap: str,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = yaml.safe_load(FIXTURE.read_text())
    template = next(t for t in data["topics"] if t["name"] == "media.text.transcribed.words")
    names = []
    for letter in ("a", "b"):
        topic = copy.deepcopy(template)
        topic["name"] = f"test.pause.{letter}.{uuid.uuid4().hex[:8]}"
        topic["partitions"] = 4
        topic["table"]["name"] = f"pause_{letter}_{uuid.uuid4().hex[:8]}"
        data["topics"].append(topic)
        names.append(topic["name"])
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(data))
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", registry_url)
    monkeypatch.setenv("PIPELINE_WAREHOUSE_URL", postgres_url)
    assert main(["registry", "import", str(registry_file)]) == 0
    document = _document(registry_url)
    paused_topic = document.topic(names[0])
    assert paused_topic is not None and paused_topic.table is not None
    table = f"warehouse/{paused_topic.table.name}"
    for name in names:
        topic = document.topic(name)
        assert topic is not None
        fill(kafka_bootstrap, topic, {0: 3, 1: 2})
    tick_args = {"warehouse_url": postgres_url, "bootstrap": kafka_bootstrap, "instance": instance}
    assert _requested(document, set(names), **tick_args) == sorted(names)

    code, out, _ = _run(capsys, "pause", table, "--actor", "ops")
    assert code == 0 and out.strip() == (
        f"table {table} (topic {names[0]}) is now paused: registry revision 2"
    )
    code, out, _ = _run(capsys, "pause", table)
    assert code == 0 and "already paused; nothing written" in out
    _, out, _ = _run(capsys, "registry", "history", "--json")
    latest = json.loads(out)[0]
    assert (latest["revision"], latest["actor"], latest["source"]) == (2, "ops", f"pause {table}")

    document = _document(registry_url)
    paused = document.topic(names[0])
    assert paused is not None and paused.active is False
    assert _requested(document, set(names), **tick_args) == [names[1]]

    code, out, _ = _run(capsys, "resume", names[0], "--json")  # by topic name
    assert code == 0 and json.loads(out) == {
        "kind": "table",
        "name": table,
        "topic": names[0],
        "state": "active",
        "revision": 3,
    }
    assert _requested(_document(registry_url), set(names), **tick_args) == sorted(names)

    code, _, err = _run(capsys, "pause", "no-such-thing")
    assert code == 1 and err.count("\n") == 1 and "neither an ingested table" in err


def test_pause_and_resume_a_pipeline_stops_its_schedule_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", registry_url)
    assert main(["registry", "import", str(FIXTURE)]) == 0

    def schedule_status() -> dg.DefaultScheduleStatus:
        snapshot = RegistrySnapshot(_document(registry_url), "x", "registry")
        defs = build_definitions(snapshot, environ={})
        [schedule] = defs.get_repository_def().schedule_defs
        return schedule.default_status

    assert schedule_status() == dg.DefaultScheduleStatus.RUNNING
    code, out, _ = _run(capsys, "pause", "daily-sales-sync")
    assert code == 0 and out.startswith("pipeline daily-sales-sync is now paused")
    pipeline = _document(registry_url).pipelines[0]
    assert pipeline.status == "paused"
    assert schedule_status() == dg.DefaultScheduleStatus.STOPPED
    assert _run(capsys, "resume", "daily-sales-sync")[0] == 0
    assert schedule_status() == dg.DefaultScheduleStatus.RUNNING
