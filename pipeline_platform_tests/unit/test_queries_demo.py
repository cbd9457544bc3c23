"""Registry queries on the demo registry: its size, its features and every query answering."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_platform
from pipeline_platform.registry import queries
from pipeline_platform.registry.document import FIELD_TYPES, RegistryDocument
from pipeline_platform.registry.validation import load_document

DEMO = Path(pipeline_platform.__file__).parent / "dev" / "demo_registry.yaml"


@pytest.fixture(scope="module")
def demo() -> RegistryDocument:
    return load_document(DEMO)


def test_demo_registry_has_the_realistic_size(demo: RegistryDocument) -> None:
    tables = [t.table for t in demo.topics if t.table is not None]
    assert len(demo.topics) >= 62
    assert len(tables) >= 31
    assert sum(len(t.mappings) for t in tables) >= 360
    assert len(demo.flows) >= 11
    assert sum(len(f.stages) for f in demo.flows) >= 13
    assert sum(len(t.api_endpoints) for t in demo.topics) >= 3
    assert 2 <= len(demo.data_sources) <= 3
    assert sorted(p.mode for p in demo.pipelines) == ["batch", "batch", "batch", "realtime"]


def test_demo_registry_uses_every_mapping_feature(demo: RegistryDocument) -> None:
    tables = [t.table for t in demo.topics if t.table is not None]
    mappings = [m for t in tables for m in t.mappings]
    assert {m.type for m in mappings} == set(FIELD_TYPES)
    assert any("." in m.source for m in mappings)
    assert any("[" in m.source for m in mappings)
    assert any(m.default is not None for m in mappings)
    assert any(m.required for m in mappings)
    assert any(t.upsert_key for t in tables)
    assert any(not t.upsert_key for t in tables)
    assert any(t.time_column for t in tables)
    assert any(t.data_source != "warehouse" for t in tables)
    ingested = [t for t in demo.topics if t.api_endpoints]
    assert ingested
    assert all(t.json_schema is not None for t in ingested)


def test_demo_registry_has_the_example_domain(demo: RegistryDocument) -> None:
    audio_raw = demo.topic("device.audio.raw")
    assert audio_raw is not None
    assert audio_raw.table is not None
    assert audio_raw.table.name == "device_audio_raw"
    assert {e.path for e in audio_raw.api_endpoints} == {
        "/audio/upload",
        "/audio/stream/{device_id}",
    }
    stages = {s["stage_name"]: s for s in queries.flow(demo, "audio-processing")["stages"]}
    assert stages["vad-processing"]["service_name"] == "silero-vad"
    assert stages["vad-processing"]["output_topics"] == ["media.audio.vad_filtered"]
    assert stages["speech-to-text"]["service_name"] == "kyutai-stt"
    assert stages["speech-to-text"]["output_topics"] == ["media.text.transcribed.words"]
    names = {t.name for t in demo.topics}
    for part in ("wifi", "bluetooth", "cellular", "gps", "accelerometer", "gyroscope"):
        assert any(part in n for n in names), part
    assert any(n.startswith("errors.") for n in names)
    used_modules = {n.module for p in demo.pipelines for n in p.graph.nodes}
    assert {"sql_table_extractor", "filter_rows", "sql_table_loader"} <= used_modules
    assert used_modules & {"select_columns", "aggregate"}


def test_every_query_answers_on_the_demo_registry(demo: RegistryDocument) -> None:
    assert len(queries.flows(demo)["flows"]) == len([f for f in demo.flows if f.active])
    assert len(queries.topics(demo)["topics"]) == len(demo.topics)
    stage_count = sum(len(f.stages) for f in demo.flows)
    assert len(queries.stages(demo)["stages"]) == stage_count
    for f in demo.flows:
        assert queries.flow(demo, f.name)["flow"]["stage_count"] == len(f.stages)
    graph = queries.pipeline_graph(demo)
    ids = {n["id"] for n in graph["nodes"]}
    assert len(ids) == len(graph["nodes"])
    assert all(e["source"] in ids and e["target"] in ids for e in graph["edges"])
    positions = [(n["position"]["x"], n["position"]["y"]) for n in graph["nodes"]]
    assert len(set(positions)) == len(positions)
    x_of = {n["id"]: n["position"]["x"] for n in graph["nodes"]}
    assert all(x_of[e["source"]] < x_of[e["target"]] for e in graph["edges"])
    words = queries.lineage(demo, "media.text.transcribed.words")
    assert [p["service"] for p in words["producers"]] == ["kyutai-stt"]
    assert words["storageTable"] == "media_text_transcribed_words"
    services = {s["service_name"] for s in queries.stages(demo)["stages"]}
    for name in services:
        assert queries.service(demo, name)["service_name"] == name
    kyutai = [
        d for d in queries.dependencies(demo)["dependencies"] if d["target_service"] == "kyutai-stt"
    ]
    assert [d["source_service"] for d in kyutai] == ["silero-vad"]
    other = [t for t in queries.topics(demo)["topics"] if "data_source" in t]
    assert other and all(t["data_source"] != "warehouse" for t in other)
