"""Registry queries: answers worked out by hand from small_registry.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES
from pipeline_platform.registry import queries
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import load_document

SMALL = Path(__file__).parent.parent / "fixtures" / "small_registry.yaml"


@pytest.fixture(scope="module")
def small() -> RegistryDocument:
    return load_document(SMALL)


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
