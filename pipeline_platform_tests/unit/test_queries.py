"""Registry queries: answers worked out by hand from small_registry.yaml, and the demo registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pipeline_platform
from pipeline_platform.pipelines.catalog import BUILTIN_MODULES
from pipeline_platform.registry import queries
from pipeline_platform.registry.document import FIELD_TYPES, RegistryDocument
from pipeline_platform.registry.validation import load_document

SMALL = Path(__file__).parent.parent / "fixtures" / "small_registry.yaml"
DEMO = Path(pipeline_platform.__file__).parent / "dev" / "demo_registry.yaml"


@pytest.fixture(scope="module")
def small() -> RegistryDocument:
    return load_document(SMALL)


@pytest.fixture(scope="module")
def demo() -> RegistryDocument:
    return load_document(DEMO)


VAD_STAGE = {
    "flow": "audio-processing",
    "name": "vad-processing",
    "order": 1,
    "service": "silero-vad",
    "description": "",
    "inputs": ["device.audio.raw"],
    "outputs": ["media.audio.vad_filtered"],
    "errors": ["errors.audio.vad"],
}
STT_STAGE = {
    "flow": "audio-processing",
    "name": "speech-to-text",
    "order": 2,
    "service": "kyutai-stt",
    "description": "",
    "inputs": ["media.audio.vad_filtered"],
    "outputs": ["media.text.transcribed.words"],
    "errors": [],
}
WIFI_STAGE = {
    "flow": "network-monitoring",
    "name": "wifi-enrichment",
    "order": 1,
    "service": "wifi-enricher",
    "description": "",
    "inputs": ["device.network.wifi.raw"],
    "outputs": [],
    "errors": [],
}
AUDIO_FLOW = {
    "name": "audio-processing",
    "description": "Audio data processing pipeline",
    "priority": "high",
    "active": True,
    "stageCount": 2,
    "topicCount": 4,
}
NETWORK_FLOW = {
    "name": "network-monitoring",
    "description": "Network scans",
    "priority": "normal",
    "active": True,
    "stageCount": 1,
    "topicCount": 1,
}
AUDIO_RAW = {
    "name": "device.audio.raw",
    "category": "device",
    "source": "audio",
    "datatype": "raw",
    "description": "Raw audio chunks from devices",
    "partitions": 3,
    "retentionDays": 7,
    "active": True,
    "hasSchema": True,
}
VAD_ERRORS = {
    "name": "errors.audio.vad",
    "category": "errors",
    "source": "audio",
    "datatype": "vad",
    "description": "",
    "partitions": 1,
    "retentionDays": None,
    "active": True,
    "hasSchema": False,
}
VAD_REF = {"flow": "audio-processing", "stage": "vad-processing", "service": "silero-vad"}
STT_REF = {"flow": "audio-processing", "stage": "speech-to-text", "service": "kyutai-stt"}


# ----------------------------------------------------------------------------- small registry


def test_flows_by_priority_then_name(small: RegistryDocument) -> None:
    assert queries.flows(small) == [AUDIO_FLOW, NETWORK_FLOW]


def test_flow_details(small: RegistryDocument) -> None:
    assert queries.flow(small, "audio-processing") == {
        "flow": AUDIO_FLOW,
        "stages": [VAD_STAGE, STT_STAGE],
        "stageCount": 2,
        "inputTopics": ["device.audio.raw", "media.audio.vad_filtered"],
        "outputTopics": ["media.audio.vad_filtered", "media.text.transcribed.words"],
        "errorTopics": ["errors.audio.vad"],
    }
    assert queries.flow(small, "network-monitoring") == {
        "flow": NETWORK_FLOW,
        "stages": [WIFI_STAGE],
        "stageCount": 1,
        "inputTopics": ["device.network.wifi.raw"],
        "outputTopics": [],
        "errorTopics": [],
    }


def test_stages_all_and_of_one_flow(small: RegistryDocument) -> None:
    assert queries.stages(small) == [VAD_STAGE, STT_STAGE, WIFI_STAGE]
    assert queries.stages(small, "network-monitoring") == [WIFI_STAGE]
    assert queries.stages(small, "audio-processing") == [VAD_STAGE, STT_STAGE]


def test_topics(small: RegistryDocument) -> None:
    assert queries.topics(small) == [
        {
            **AUDIO_RAW,
            "storageTable": "warehouse/device_audio_raw",
            "producers": [],
            "consumers": ["silero-vad"],
        },
        {
            "name": "device.network.wifi.raw",
            "category": "device",
            "source": "network",
            "datatype": "wifi",
            "description": "Wi-Fi scans from phones",
            "partitions": 3,
            "retentionDays": 30,
            "active": True,
            "hasSchema": False,
            "storageTable": "warehouse/device_network_wifi_raw",
            "producers": [],
            "consumers": ["wifi-enricher"],
        },
        {**VAD_ERRORS, "storageTable": None, "producers": ["silero-vad"], "consumers": []},
        {
            "name": "media.audio.vad_filtered",
            "category": "media",
            "source": "audio",
            "datatype": "vad",
            "description": "Speech segments kept by voice activity detection",
            "partitions": 1,
            "retentionDays": None,
            "active": True,
            "hasSchema": False,
            "storageTable": None,
            "producers": ["silero-vad"],
            "consumers": ["kyutai-stt"],
        },
        {
            "name": "media.text.transcribed.words",
            "category": "media",
            "source": "text",
            "datatype": "words",
            "description": "Words transcribed from speech",
            "partitions": 1,
            "retentionDays": None,
            "active": True,
            "hasSchema": False,
            "storageTable": "warehouse/transcribed_words",
            "producers": ["kyutai-stt"],
            "consumers": [],
        },
    ]


def _edge(source: str, target: str, kind: str, flow: Any = None, stage: Any = None) -> dict:
    return {"source": source, "target": target, "kind": kind, "flow": flow, "stage": stage}


def test_topology(small: RegistryDocument) -> None:
    audio = "audio-processing"
    assert queries.topology(small) == {
        "nodes": [
            {
                "id": "api:POST /audio/stream/{device_id}",
                "type": "apiEndpoint",
                "name": "POST /audio/stream/{device_id}",
            },
            {"id": "api:POST /audio/upload", "type": "apiEndpoint", "name": "POST /audio/upload"},
            {"id": "api:POST /network/wifi", "type": "apiEndpoint", "name": "POST /network/wifi"},
            {"id": "topic:device.audio.raw", "type": "topic", "name": "device.audio.raw"},
            {
                "id": "topic:device.network.wifi.raw",
                "type": "topic",
                "name": "device.network.wifi.raw",
            },
            {"id": "topic:errors.audio.vad", "type": "topic", "name": "errors.audio.vad"},
            {
                "id": "topic:media.audio.vad_filtered",
                "type": "topic",
                "name": "media.audio.vad_filtered",
            },
            {
                "id": "topic:media.text.transcribed.words",
                "type": "topic",
                "name": "media.text.transcribed.words",
            },
            {"id": "service:kyutai-stt", "type": "service", "name": "kyutai-stt"},
            {"id": "service:silero-vad", "type": "service", "name": "silero-vad"},
            {"id": "service:wifi-enricher", "type": "service", "name": "wifi-enricher"},
            {
                "id": "table:warehouse/device_audio_raw",
                "type": "table",
                "name": "warehouse/device_audio_raw",
            },
            {
                "id": "table:warehouse/device_network_wifi_raw",
                "type": "table",
                "name": "warehouse/device_network_wifi_raw",
            },
            {
                "id": "table:warehouse/transcribed_words",
                "type": "table",
                "name": "warehouse/transcribed_words",
            },
        ],
        "edges": [
            _edge("api:POST /audio/stream/{device_id}", "topic:device.audio.raw", "publishes"),
            _edge("api:POST /audio/upload", "topic:device.audio.raw", "publishes"),
            _edge("api:POST /network/wifi", "topic:device.network.wifi.raw", "publishes"),
            _edge(
                "service:kyutai-stt",
                "topic:media.text.transcribed.words",
                "produces",
                audio,
                "speech-to-text",
            ),
            _edge(
                "service:silero-vad", "topic:errors.audio.vad", "errors", audio, "vad-processing"
            ),
            _edge(
                "service:silero-vad",
                "topic:media.audio.vad_filtered",
                "produces",
                audio,
                "vad-processing",
            ),
            _edge(
                "topic:device.audio.raw", "service:silero-vad", "consumes", audio, "vad-processing"
            ),
            _edge("topic:device.audio.raw", "table:warehouse/device_audio_raw", "stores"),
            _edge(
                "topic:device.network.wifi.raw",
                "service:wifi-enricher",
                "consumes",
                "network-monitoring",
                "wifi-enrichment",
            ),
            _edge(
                "topic:device.network.wifi.raw",
                "table:warehouse/device_network_wifi_raw",
                "stores",
            ),
            _edge(
                "topic:media.audio.vad_filtered",
                "service:kyutai-stt",
                "consumes",
                audio,
                "speech-to-text",
            ),
            _edge(
                "topic:media.text.transcribed.words", "table:warehouse/transcribed_words", "stores"
            ),
        ],
    }


def test_dependencies(small: RegistryDocument) -> None:
    assert queries.dependencies(small) == [
        {
            "service": "kyutai-stt",
            "flows": ["audio-processing"],
            "upstream": ["silero-vad"],
            "downstream": [],
            "inputTopics": ["media.audio.vad_filtered"],
            "outputTopics": ["media.text.transcribed.words"],
        },
        {
            "service": "silero-vad",
            "flows": ["audio-processing"],
            "upstream": [],
            "downstream": ["kyutai-stt"],
            "inputTopics": ["device.audio.raw"],
            "outputTopics": ["errors.audio.vad", "media.audio.vad_filtered"],
        },
        {
            "service": "wifi-enricher",
            "flows": ["network-monitoring"],
            "upstream": [],
            "downstream": [],
            "inputTopics": ["device.network.wifi.raw"],
            "outputTopics": [],
        },
    ]


def test_lineage_of_an_ingested_topic(small: RegistryDocument) -> None:
    assert queries.lineage(small, "device.audio.raw") == {
        "topic": AUDIO_RAW,
        "producers": [],
        "consumers": [VAD_REF],
        "apiEndpoints": [
            {"method": "POST", "path": "/audio/upload"},
            {"method": "POST", "path": "/audio/stream/{device_id}"},
        ],
        "storageTable": "warehouse/device_audio_raw",
    }


def test_lineage_of_an_intermediate_and_an_error_topic(small: RegistryDocument) -> None:
    assert queries.lineage(small, "media.audio.vad_filtered") == {
        "topic": {
            "name": "media.audio.vad_filtered",
            "category": "media",
            "source": "audio",
            "datatype": "vad",
            "description": "Speech segments kept by voice activity detection",
            "partitions": 1,
            "retentionDays": None,
            "active": True,
            "hasSchema": False,
        },
        "producers": [VAD_REF],
        "consumers": [STT_REF],
        "apiEndpoints": [],
        "storageTable": None,
    }
    assert queries.lineage(small, "errors.audio.vad") == {
        "topic": VAD_ERRORS,
        "producers": [VAD_REF],
        "consumers": [],
        "apiEndpoints": [],
        "storageTable": None,
    }


def test_service(small: RegistryDocument) -> None:
    assert queries.service(small, "silero-vad") == {
        "service": "silero-vad",
        "flows": ["audio-processing"],
        "stages": [VAD_STAGE],
        "inputTopics": ["device.audio.raw"],
        "outputTopics": ["media.audio.vad_filtered"],
        "errorTopics": ["errors.audio.vad"],
    }
    assert queries.service(small, "kyutai-stt") == {
        "service": "kyutai-stt",
        "flows": ["audio-processing"],
        "stages": [STT_STAGE],
        "inputTopics": ["media.audio.vad_filtered"],
        "outputTopics": ["media.text.transcribed.words"],
        "errorTopics": [],
    }


def test_modules() -> None:
    result = queries.modules()
    kinds = [m["kind"] for m in result]
    assert kinds == sorted(kinds, key=["extractor", "transformer", "loader"].index)
    assert {m["name"] for m in result} >= {
        "sql_table_extractor", "sql_query_extractor", "csv_extractor", "parquet_extractor",
        "filter_rows", "select_columns", "rename_columns", "cast_columns", "derive_column",
        "deduplicate", "aggregate", "join", "mask_columns", "fill_nulls", "sort_rows",
        "limit_rows", "sql_table_loader", "csv_loader", "parquet_loader",
    }  # fmt: skip
    by_name = {m.name: m for m in BUILTIN_MODULES}
    for module in result:
        assert module["usageCount"] == 0
        assert module["documentationUrl"] == f"docs/pipelines.md#{module['name']}"
        assert module["description"] == by_name[module["name"]].description
        assert module["configSchema"] == by_name[module["name"]].config_schema


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: queries.flow(d, "nope"), "unknown flow 'nope'"),
        (lambda d: queries.stages(d, "nope"), "unknown flow 'nope'"),
        (lambda d: queries.lineage(d, "no.such.topic"), "unknown topic 'no.such.topic'"),
        (lambda d: queries.service(d, "nope"), "unknown service 'nope'"),
    ],
)
def test_unknown_names_raise_lookup_error(small: RegistryDocument, call: Any, message: str) -> None:
    with pytest.raises(LookupError) as caught:
        call(small)
    assert str(caught.value) == message


def test_answers_do_not_depend_on_document_order(small: RegistryDocument) -> None:
    shuffled = small.model_copy(update={"topics": small.topics[::-1], "flows": small.flows[::-1]})
    for question in (
        queries.flows,
        queries.stages,
        queries.topics,
        queries.topology,
        queries.dependencies,
    ):
        assert question(shuffled) == question(small)
    assert queries.lineage(shuffled, "device.audio.raw") == queries.lineage(
        small, "device.audio.raw"
    )


def test_empty_registry() -> None:
    empty = RegistryDocument()
    assert queries.flows(empty) == []
    assert queries.stages(empty) == []
    assert queries.topics(empty) == []
    assert queries.topology(empty) == {"nodes": [], "edges": []}
    assert queries.dependencies(empty) == []


# ----------------------------------------------------------------------------- demo registry


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
    stages = {s["name"]: s for s in queries.flow(demo, "audio-processing")["stages"]}
    assert stages["vad-processing"]["service"] == "silero-vad"
    assert stages["vad-processing"]["outputs"] == ["media.audio.vad_filtered"]
    assert stages["speech-to-text"]["service"] == "kyutai-stt"
    assert stages["speech-to-text"]["outputs"] == ["media.text.transcribed.words"]
    names = {t.name for t in demo.topics}
    for part in ("wifi", "bluetooth", "cellular", "gps", "accelerometer", "gyroscope"):
        assert any(part in n for n in names), part
    assert any(n.startswith("errors.") for n in names)
    used_modules = {n.module for p in demo.pipelines for n in p.graph.nodes}
    assert {"sql_table_extractor", "filter_rows", "sql_table_loader"} <= used_modules
    assert used_modules & {"select_columns", "aggregate"}


def test_every_query_answers_on_the_demo_registry(demo: RegistryDocument) -> None:
    assert len(queries.flows(demo)) == len(demo.flows)
    assert len(queries.topics(demo)) == len(demo.topics)
    stage_count = sum(len(f.stages) for f in demo.flows)
    assert len(queries.stages(demo)) == stage_count
    for f in demo.flows:
        assert queries.flow(demo, f.name)["stageCount"] == len(f.stages)
    topology = queries.topology(demo)
    ids = {n["id"] for n in topology["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in topology["edges"])
    words = queries.lineage(demo, "media.text.transcribed.words")
    assert [p["service"] for p in words["producers"]] == ["kyutai-stt"]
    assert words["storageTable"] == "warehouse/media_text_transcribed_words"
    services = {d["service"] for d in queries.dependencies(demo)}
    for name in services:
        assert queries.service(demo, name)["service"] == name
    kyutai = next(d for d in queries.dependencies(demo) if d["service"] == "kyutai-stt")
    assert kyutai["upstream"] == ["silero-vad"]
