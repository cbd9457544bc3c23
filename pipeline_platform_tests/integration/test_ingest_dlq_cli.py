"""``pipeline-platform dlq list | replay`` over a SQLite registry and warehouse."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.kafka import produce

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


def test_dlq_list_and_replay_after_registry_fix(
    tmp_path: Path,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = yaml.safe_load(FIXTURE.read_text())
    original = next(t for t in data["topics"] if t["name"] == "media.text.transcribed.words")
    # A topic of its own on the shared broker, with the same table shape.
    words = {**copy.deepcopy(original), "name": "test.dlq.words"}
    words["table"]["name"] = "dlq_words"
    data["topics"].append(words)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("PIPELINE_WAREHOUSE_URL", warehouse)
    assert main(["registry", "import", str(broken)]) == 0
    topic = load_document(broken).topic("test.dlq.words")
    assert topic is not None
    produce(
        kafka_bootstrap,
        topic.name,
        [
            (0, None, orjson.dumps({"device_id": "d1", "word": "hi", "start_ms": 10})),
            (0, None, orjson.dumps({"device_id": "d1", "word": "there", "start_ms": "late"})),
            (0, None, b"{nope"),
        ],
    )
    result = ingest_table(
        topic,
        warehouse_url=warehouse,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="r1",
    )
    assert result.dead_letters == 2
    capsys.readouterr()
    assert main(["dlq", "list", "test.dlq.words", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["offset"] for d in listed] == [1, 2]
    assert "start_ms" in listed[0]["reason"] and listed[1]["reason"].startswith("malformed JSON")
    # Fix the registry: start_ms becomes text kept in a new column.
    words["table"]["mappings"][2] = {"source": "start_ms", "column": "start_text", "type": "string"}
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(data))
    assert main(["registry", "import", str(fixed)]) == 0
    capsys.readouterr()
    assert main(["dlq", "replay", "test.dlq.words", "--json"]) == 0
    replay = json.loads(capsys.readouterr().out)["topics"][0]
    assert (replay["replayed"], replay["rowsWritten"], replay["stillFailing"]) == (2, 1, 1)
    assert main(["dlq", "list", "test.dlq.words", "--json"]) == 0
    left = json.loads(capsys.readouterr().out)
    assert [d["offset"] for d in left] == [2]
    assert main(["dlq", "list", "no.such.topic"]) == 1
