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


AUDIO_FLOW = {
    "flow_name": "audio-processing",
    "description": "Audio data processing pipeline",
    "priority": "high",
    "stage_count": 2,
    "topic_count": 4,
    "active": True,
}
NETWORK_FLOW = {
    "flow_name": "network-monitoring",
    "description": "Network scans",
    "priority": "normal",
    "stage_count": 1,
    "topic_count": 1,
    "active": True,
}
VAD_STAGE = {
    "flow_name": "audio-processing",
    "stage_name": "vad-processing",
    "service_name": "silero-vad",
    "input_topics": ["device.audio.raw"],
    "output_topics": ["media.audio.vad_filtered"],
    "error_topics": ["errors.audio.vad"],
}
STT_STAGE = {
    "flow_name": "audio-processing",
    "stage_name": "speech-to-text",
    "service_name": "kyutai-stt",
    "input_topics": ["media.audio.vad_filtered"],
    "output_topics": ["media.text.transcribed.words"],
    "error_topics": [],
}
WIFI_STAGE = {
    "flow_name": "network-monitoring",
    "stage_name": "wifi-enrichment",
    "service_name": "wifi-enricher",
    "input_topics": ["device.network.wifi.raw"],
    "output_topics": [],
    "error_topics": [],
}
SMALL_TOPICS = [
    {
        "topic_name": "device.audio.raw",
        "category": "device",
        "source": "audio",
        "datatype": "raw",
        "description": "Raw audio chunks from devices",
        "retention_days": 7,
        "partitions": 3,
        "primary_endpoints": ["/audio/upload", "/audio/stream/{device_id}"],
        "table_name": "device_audio_raw",
    },
    {
        "topic_name": "device.network.wifi.raw",
        "category": "device",
        "source": "network",
        "datatype": "wifi",
        "description": "Wi-Fi scans from phones",
        "retention_days": 30,
        "partitions": 3,
        "primary_endpoints": ["/network/wifi"],
        "table_name": "device_network_wifi_raw",
    },
    {
        "topic_name": "errors.audio.vad",
        "category": "errors",
        "source": "audio",
        "datatype": "vad",
        "description": "",
        "retention_days": None,
        "partitions": 1,
        "primary_endpoints": [],
        "table_name": None,
    },
    {
        "topic_name": "media.audio.vad_filtered",
        "category": "media",
        "source": "audio",
        "datatype": "vad",
        "description": "Speech segments kept by voice activity detection",
        "retention_days": None,
        "partitions": 1,
        "primary_endpoints": [],
        "table_name": None,
    },
    {
        "topic_name": "media.text.transcribed.words",
        "category": "media",
        "source": "text",
        "datatype": "words",
        "description": "Words transcribed from speech",
        "retention_days": None,
        "partitions": 1,
        "primary_endpoints": [],
        "table_name": "transcribed_words",
    },
]
VAD_REF = {"flow": "audio-processing", "stage": "vad-processing", "service": "silero-vad"}
STT_REF = {"flow": "audio-processing", "stage": "speech-to-text", "service": "kyutai-stt"}


# ----------------------------------------------------------------------------- small registry


def test_flows_by_priority_then_name(small: RegistryDocument) -> None:
    assert queries.flows(small) == {"flows": [AUDIO_FLOW, NETWORK_FLOW]}


def test_flows_lists_active_flows_only(small: RegistryDocument) -> None:
    paused = small.model_copy(
        update={"flows": tuple(f.model_copy(update={"active": False}) for f in small.flows[:1])}
    )
    assert queries.flows(paused) == {"flows": []}


def test_flow_details(small: RegistryDocument) -> None:
    assert queries.flow(small, "audio-processing") == {
        "flow": {
            "flow_name": "audio-processing",
            "description": "Audio data processing pipeline",
            "priority": "high",
            "stage_count": 2,
        },
        "stages": [
            {
                "stage_name": "vad-processing",
                "service_name": "silero-vad",
                "input_topics": ["device.audio.raw"],
                "output_topics": ["media.audio.vad_filtered"],
                "error_topics": ["errors.audio.vad"],
                "stage_order": 1,
            },
            {
                "stage_name": "speech-to-text",
                "service_name": "kyutai-stt",
                "input_topics": ["media.audio.vad_filtered"],
                "output_topics": ["media.text.transcribed.words"],
                "error_topics": [],
                "stage_order": 2,
            },
        ],
    }


def test_stages_all_and_of_one_flow(small: RegistryDocument) -> None:
    assert queries.stages(small) == {"stages": [VAD_STAGE, STT_STAGE, WIFI_STAGE]}
    assert queries.stages(small, "network-monitoring") == {"stages": [WIFI_STAGE]}
    assert queries.stages(small, "audio-processing") == {"stages": [VAD_STAGE, STT_STAGE]}


def test_topics(small: RegistryDocument) -> None:
    assert queries.topics(small) == {"topics": SMALL_TOPICS}


def test_ingested_topics(small: RegistryDocument) -> None:
    assert queries.ingested_topics(small) == {
        "topics": ["device.audio.raw", "device.network.wifi.raw", "media.text.transcribed.words"]
    }


def test_topology(small: RegistryDocument) -> None:
    assert queries.topology(small) == {
        "flows": [AUDIO_FLOW, NETWORK_FLOW],
        "stages": [VAD_STAGE, STT_STAGE, WIFI_STAGE],
        "topics": SMALL_TOPICS,
        "topic_producers": {
            "errors.audio.vad": ["silero-vad"],
            "media.audio.vad_filtered": ["silero-vad"],
            "media.text.transcribed.words": ["kyutai-stt"],
        },
        "topic_consumers": {
            "device.audio.raw": ["silero-vad"],
            "device.network.wifi.raw": ["wifi-enricher"],
            "media.audio.vad_filtered": ["kyutai-stt"],
        },
    }


def test_dependencies(small: RegistryDocument) -> None:
    assert queries.dependencies(small) == {
        "dependencies": [
            {
                "source_service": "silero-vad",
                "target_service": "kyutai-stt",
                "via_topics": ["media.audio.vad_filtered"],
            }
        ]
    }


def test_lineage_of_an_ingested_topic(small: RegistryDocument) -> None:
    assert queries.lineage(small, "device.audio.raw") == {
        "topic": {
            "topic_name": "device.audio.raw",
            "description": "Raw audio chunks from devices",
            "retention_days": 7,
            "primary_endpoints": ["/audio/upload", "/audio/stream/{device_id}"],
            "table_name": "device_audio_raw",
        },
        "producers": [],
        "consumers": [VAD_REF],
        "apiEndpoints": ["/audio/upload", "/audio/stream/{device_id}"],
        "storageTable": "device_audio_raw",
    }


def test_lineage_of_an_intermediate_and_an_error_topic(small: RegistryDocument) -> None:
    assert queries.lineage(small, "media.audio.vad_filtered") == {
        "topic": {
            "topic_name": "media.audio.vad_filtered",
            "description": "Speech segments kept by voice activity detection",
            "retention_days": None,
            "primary_endpoints": [],
            "table_name": None,
        },
        "producers": [VAD_REF],
        "consumers": [STT_REF],
        "apiEndpoints": [],
        "storageTable": None,
    }
    assert queries.lineage(small, "errors.audio.vad") == {
        "topic": {
            "topic_name": "errors.audio.vad",
            "description": "",
            "retention_days": None,
            "primary_endpoints": [],
            "table_name": None,
        },
        "producers": [VAD_REF],
        "consumers": [],
        "apiEndpoints": [],
        "storageTable": None,
    }


def test_service(small: RegistryDocument) -> None:
    assert queries.service(small, "silero-vad") == {
        "service_name": "silero-vad",
        "stages": [
            {
                "flow_name": "audio-processing",
                "stage_name": "vad-processing",
                "input_topics": ["device.audio.raw"],
                "output_topics": ["media.audio.vad_filtered"],
            }
        ],
    }


def _node(node_id: str, kind: str, x: int, y: int, label: str, description: str) -> dict:
    data = {"label": label, "status": "active", "description": description}
    return {"id": node_id, "type": kind, "position": {"x": x, "y": y}, "data": data}


def _edge(source: str, target: str) -> dict:
    return {"id": f"e-{source}-{target}", "source": source, "target": target, "animated": True}


def test_pipeline_graph_layers_left_to_right(small: RegistryDocument) -> None:
    stream = "/audio/stream/{device_id}"
    audio, wifi = "device.audio.raw", "device.network.wifi.raw"
    vad, errors, words = (
        "media.audio.vad_filtered",
        "errors.audio.vad",
        "media.text.transcribed.words",
    )
    assert queries.pipeline_graph(small) == {
        "nodes": [
            _node(f"api-{stream}", "external", 0, 0, stream, f"POST {stream}"),
            _node("api-/audio/upload", "external", 0, 120, "/audio/upload", "POST /audio/upload"),
            _node("api-/network/wifi", "external", 0, 240, "/network/wifi", "POST /network/wifi"),
            _node(audio, "kafka", 300, 0, audio, "Raw audio chunks from devices"),
            _node(wifi, "kafka", 300, 120, wifi, "Wi-Fi scans from phones"),
            _node(
                "service-silero-vad",
                "processor",
                600,
                0,
                "silero-vad",
                "audio-processing/vad-processing",
            ),
            _node(
                "service-wifi-enricher",
                "processor",
                600,
                120,
                "wifi-enricher",
                "network-monitoring/wifi-enrichment",
            ),
            _node(
                "db-device_audio_raw",
                "database",
                600,
                240,
                "device_audio_raw",
                "warehouse.public.device_audio_raw",
            ),
            _node(
                "db-device_network_wifi_raw",
                "database",
                600,
                360,
                "device_network_wifi_raw",
                "warehouse.public.device_network_wifi_raw",
            ),
            _node(errors, "kafka", 900, 0, errors, ""),
            _node(vad, "kafka", 900, 120, vad, "Speech segments kept by voice activity detection"),
            _node(
                "service-kyutai-stt",
                "processor",
                1200,
                0,
                "kyutai-stt",
                "audio-processing/speech-to-text",
            ),
            _node(words, "kafka", 1500, 0, words, "Words transcribed from speech"),
            _node(
                "db-transcribed_words",
                "database",
                1800,
                0,
                "transcribed_words",
                "warehouse.public.transcribed_words",
            ),
        ],
        "edges": [
            _edge(f"api-{stream}", audio),
            _edge("api-/audio/upload", audio),
            _edge("api-/network/wifi", wifi),
            _edge(audio, "db-device_audio_raw"),
            _edge(audio, "service-silero-vad"),
            _edge(wifi, "db-device_network_wifi_raw"),
            _edge(wifi, "service-wifi-enricher"),
            _edge(vad, "service-kyutai-stt"),
            _edge(words, "db-transcribed_words"),
            _edge("service-kyutai-stt", words),
            _edge("service-silero-vad", errors),
            _edge("service-silero-vad", vad),
        ],
    }


def test_validation_statistics(small: RegistryDocument) -> None:
    assert queries.validation_statistics(small) == {
        "topics": 5,
        "tables": 3,
        "mappings": 13,
        "flows": 2,
        "stages": 3,
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
        queries.pipeline_graph,
    ):
        assert question(shuffled) == question(small)
    assert queries.lineage(shuffled, "device.audio.raw") == queries.lineage(
        small, "device.audio.raw"
    )


def test_empty_registry() -> None:
    empty = RegistryDocument()
    assert queries.flows(empty) == {"flows": []}
    assert queries.stages(empty) == {"stages": []}
    assert queries.topics(empty) == {"topics": []}
    assert queries.topology(empty) == {
        "flows": [],
        "stages": [],
        "topics": [],
        "topic_producers": {},
        "topic_consumers": {},
    }
    assert queries.dependencies(empty) == {"dependencies": []}
    assert queries.pipeline_graph(empty) == {"nodes": [], "edges": []}


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
