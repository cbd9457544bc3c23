"""Registry queries: the pipeline graph of small_registry.yaml, laid out left to right."""

from __future__ import annotations

from pipeline_platform.registry import queries
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform_tests.unit.test_queries import small

__all__ = ["small"]  # the fixture, imported for this module


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
