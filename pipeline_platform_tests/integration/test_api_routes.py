"""The HTTP API over real HTTP on loopback: every route of spec §10, errors, tokens and CORS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import pipeline_platform
from pipeline_platform.registry import queries
from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.integration.api_server import api_server
from pipeline_platform_tests.unit.test_queries import (
    AUDIO_FLOW,
    NETWORK_FLOW,
    SMALL_TOPICS,
    STT_STAGE,
    VAD_STAGE,
    WIFI_STAGE,
)

SMALL = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
DEMO = Path(pipeline_platform.__file__).parent / "dev" / "demo_registry.yaml"
READ_TOKEN = "read-secret-1"
WRITE_TOKEN = "write-secret-2"


def _registry(tmp_path: Path, source: Path) -> str:
    url = f"sqlite:///{tmp_path / f'{source.stem}.db'}"
    engine = create_registry_engine(url)
    upgrade_registry(engine)
    import_document(engine, load_document(source), actor="test")
    engine.dispose()
    return url


def _env(tmp_path: Path, registry_url: str, **extra: str) -> dict[str, str]:
    return {
        "PIPELINE_REGISTRY_URL": registry_url,
        "PIPELINE_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing listens: lag unknown, not an error
        "DAGSTER_HOME": str(tmp_path),
        "PIPELINE_API_TOKEN": WRITE_TOKEN,
        "PIPELINE_DAGSTER_WEBSERVER_PORT": "9",  # no webserver: reload answers 503
        "PIPELINE_API_CORS_ORIGINS": "http://ui.example",
        **extra,
    }


@pytest.fixture(scope="module")
def small_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("small")
    with api_server(_env(tmp, _registry(tmp, SMALL))) as url:
        yield url


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("demo")
    with api_server(_env(tmp, _registry(tmp, DEMO))) as url:
        yield url


def get(base: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(base + path, timeout=30, **kwargs)


# ------------------------------------------------------------------ small registry, by hand


def test_flows_and_stages_by_hand(small_url: str) -> None:
    assert get(small_url, "/api/pipelines/flows").json() == {"flows": [AUDIO_FLOW, NETWORK_FLOW]}
    assert get(small_url, "/api/pipelines/stages").json() == {
        "stages": [VAD_STAGE, STT_STAGE, WIFI_STAGE]
    }
    assert get(
        small_url, "/api/pipelines/stages", params={"flow": "network-monitoring"}
    ).json() == {"stages": [WIFI_STAGE]}
    flow = get(small_url, "/api/pipelines/flows/network-monitoring")
    assert flow.headers["content-type"] == "application/json"
    assert flow.json() == {
        "flow": {
            "flow_name": "network-monitoring",
            "description": "Network scans",
            "priority": "normal",
            "stage_count": 1,
        },
        "stages": [
            {
                "stage_name": "wifi-enrichment",
                "service_name": "wifi-enricher",
                "input_topics": ["device.network.wifi.raw"],
                "output_topics": [],
                "error_topics": [],
                "stage_order": 1,
            }
        ],
    }


def test_topics_topology_dependencies_by_hand(small_url: str) -> None:
    assert get(small_url, "/api/pipelines/topics").json() == {"topics": SMALL_TOPICS}
    topology = get(small_url, "/api/pipelines/topology").json()
    assert list(topology) == ["flows", "stages", "topics", "topic_producers", "topic_consumers"]
    assert topology["topic_consumers"] == {
        "device.audio.raw": ["silero-vad"],
        "device.network.wifi.raw": ["wifi-enricher"],
        "media.audio.vad_filtered": ["kyutai-stt"],
    }
    assert get(small_url, "/api/kafka/pipeline/topology").json() == topology
    dependencies = {
        "dependencies": [
            {
                "source_service": "silero-vad",
                "target_service": "kyutai-stt",
                "via_topics": ["media.audio.vad_filtered"],
            }
        ]
    }
    assert get(small_url, "/api/pipelines/dependencies").json() == dependencies
    assert get(small_url, "/api/kafka/pipeline/dependencies").json() == dependencies


def test_service_lineage_graph_by_hand(small_url: str) -> None:
    assert get(small_url, "/api/pipelines/services/kyutai-stt").json() == {
        "service_name": "kyutai-stt",
        "stages": [
            {
                "flow_name": "audio-processing",
                "stage_name": "speech-to-text",
                "input_topics": ["media.audio.vad_filtered"],
                "output_topics": ["media.text.transcribed.words"],
            }
        ],
    }
    assert get(small_url, "/api/pipelines/topics/media.text.transcribed.words/lineage").json() == {
        "topic": {
            "topic_name": "media.text.transcribed.words",
            "description": "Words transcribed from speech",
            "retention_days": None,
            "primary_endpoints": [],
            "table_name": "transcribed_words",
        },
        "producers": [
            {"flow": "audio-processing", "stage": "speech-to-text", "service": "kyutai-stt"}
        ],
        "consumers": [],
        "apiEndpoints": [],
        "storageTable": "transcribed_words",
    }
    graph = get(small_url, "/api/kafka/pipeline/database").json()
    assert [n["id"] for n in graph["nodes"]][:3] == [
        "api-/audio/stream/{device_id}",
        "api-/audio/upload",
        "api-/network/wifi",
    ]
    assert graph["edges"][0] == {
        "id": "e-api-/audio/stream/{device_id}-device.audio.raw",
        "source": "api-/audio/stream/{device_id}",
        "target": "device.audio.raw",
        "animated": True,
    }


def test_consumer_routes_by_hand(small_url: str) -> None:
    assert get(small_url, "/topics").json() == {
        "topics": ["device.audio.raw", "device.network.wifi.raw", "media.text.transcribed.words"]
    }
    assert get(small_url, "/validate-config").json() == {
        "valid": True,
        "problems": [],
        "statistics": {"topics": 5, "tables": 3, "mappings": 13, "flows": 2, "stages": 3},
    }
    assert get(small_url, "/healthz").json() == {"ok": True}
    assert get(small_url, "/readyz").json() == {"ok": True}
    status = get(small_url, "/status").json()
    assert status["registry"]["revision"] == 1
    assert status["registry"]["up"] is True
    assert len(status["registry"]["fingerprint"]) == 32
    assert [t["table"] for t in status["tables"]] == [
        "device_audio_raw",
        "device_network_wifi_raw",
        "transcribed_words",
    ]
    assert list(status["tables"][0]) == [
        "topic",
        "table",
        "data_source",
        "lag_messages",
        "lag_seconds",
        "last_event_at",
        "rows_written",
        "dead_letters_24h",
        "last_run",
    ]
    assert get(small_url, "/openapi.json").json()["info"]["title"] == "pipeline_platform API"


# ---------------------------------------------------------------------------- demo registry


@pytest.mark.parametrize(
    ("path", "question"),
    [
        ("/api/pipelines/flows", queries.flows),
        ("/api/pipelines/flows/audio-processing", lambda d: queries.flow(d, "audio-processing")),
        ("/api/pipelines/stages", queries.stages),
        ("/api/pipelines/topics", queries.topics),
        ("/api/pipelines/topology", queries.topology),
        ("/api/pipelines/dependencies", queries.dependencies),
        ("/api/pipelines/services/silero-vad", lambda d: queries.service(d, "silero-vad")),
        (
            "/api/pipelines/topics/device.audio.raw/lineage",
            lambda d: queries.lineage(d, "device.audio.raw"),
        ),
        ("/api/kafka/pipeline/database", queries.pipeline_graph),
        ("/api/kafka/pipeline/topology", queries.topology),
        ("/api/kafka/pipeline/dependencies", queries.dependencies),
        ("/topics", queries.ingested_topics),
    ],
)
def test_demo_registry_routes_equal_the_serializer(demo_url: str, path: str, question: Any) -> None:
    assert get(demo_url, path).json() == question(load_document(DEMO))


def test_cli_json_prints_the_http_body(
    demo_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline_platform.cli.main import main

    monkeypatch.setenv("PIPELINE_REGISTRY_URL", _registry(tmp_path, DEMO))
    for argv, path in (
        (["flows"], "/api/pipelines/flows"),
        (["topology"], "/api/pipelines/topology"),
        (["lineage", "device.audio.raw"], "/api/pipelines/topics/device.audio.raw/lineage"),
        (["service", "kyutai-stt"], "/api/pipelines/services/kyutai-stt"),
    ):
        assert main([*argv, "--json"]) == 0
        import json

        assert json.loads(capsys.readouterr().out) == get(demo_url, path).json(), argv


# ------------------------------------------------------------------------ errors and tokens

BAD_INPUTS = [
    ("/api/pipelines/flows/nope", 404),
    ("/api/pipelines/flows/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
    ("/api/pipelines/flows/..%2F..%2Fregistry.db", 404),
    ("/api/pipelines/services/nope", 404),
    ("/api/pipelines/services/%00", 400),
    ("/api/pipelines/services/%FF%FE", 400),
    ("/api/pipelines/topics/no.such.topic/lineage", 404),
    ("/api/pipelines/topics/%2e%2e/lineage", 404),
    ("/api/pipelines/topics/%0d%0aX-Injected:%201/lineage", 400),
    ("/api/pipelines/topics/" + "a" * 300 + "/lineage", 400),
    ("/api/pipelines/flows/" + "b" * 3000, 400),
    ("/api/pipelines/flows/" + "c" * 5000, 414),
    ("/api/pipelines/stages?flow=nope", 404),
    ("/api/pipelines/stages?flow=%FF", 400),
    ("/api/pipelines/stages?flow=%00", 400),
    ("/api/pipelines/stages?flow=" + "d" * 300, 422),
    ("/api/pipelines/stages?flow=" + "e" * 6000, 414),
    ("/api/pipelines/stages?flow=", 400),
    ("/api/pipelines/nope", 404),
    ("/api/kafka/pipeline/nope", 404),
    ("/nope", 404),
    ("/../../etc/passwd", 404),
    ("/api/pipelines/flows/audio-processing/extra", 404),
    ("/api/pipelines/services/", 404),
    ("/api/pipelines/topics//lineage", 404),
    ("/api/pipelines/flows/%E2%80%AE", 400),
    ("/status/x", 404),
    ("/metrics/%2e%2e/status", 404),
    ("/validate-config/x", 404),
    ("/api/pipelines/stages?flow=%C3%28", 400),
]


@pytest.mark.parametrize(("path", "expected"), BAD_INPUTS)
def test_bad_inputs_answer_4xx_json(small_url: str, path: str, expected: int) -> None:
    response = httpx.get(small_url + path, timeout=30)
    assert response.status_code == expected, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    assert "Traceback" not in response.text


def test_wrong_methods_are_json_too(small_url: str) -> None:
    response = httpx.post(small_url + "/api/pipelines/flows", timeout=30)
    assert response.status_code == 405
    assert list(response.json()) == ["error"]
    response = httpx.get(small_url + "/reload-config", timeout=30)
    assert response.status_code == 405


def test_post_needs_the_write_token(small_url: str) -> None:
    none = httpx.post(small_url + "/reload-config", timeout=30)
    wrong = httpx.post(
        small_url + "/reload-config", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    for response in (none, wrong):
        assert response.status_code == 403
        assert WRITE_TOKEN not in response.text
        assert list(response.json()) == ["error"]
    right = httpx.post(
        small_url + "/reload-config",
        headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
        timeout=60,
    )
    # Past the token check; no webserver listens, so the reload itself is refused as a 503.
    assert right.status_code == 503
    assert right.json()["error"].startswith("code location reload failed")


def test_post_refused_when_no_write_token_is_configured(tmp_path: Path) -> None:
    env = _env(tmp_path, _registry(tmp_path, SMALL), PIPELINE_API_TOKEN="")
    with api_server(env) as url:
        response = httpx.post(
            url + "/reload-config", headers={"Authorization": "Bearer anything"}, timeout=30
        )
    assert response.status_code == 403
    assert "PIPELINE_API_TOKEN is not set" in response.json()["error"]


def test_read_token_and_cors(tmp_path: Path) -> None:
    env = _env(tmp_path, _registry(tmp_path, SMALL), PIPELINE_API_READ_TOKEN=READ_TOKEN)
    with api_server(env) as url:
        assert httpx.get(url + "/api/pipelines/flows", timeout=30).status_code == 401
        wrong = httpx.get(url + "/topics", headers={"Authorization": "Bearer x"}, timeout=30)
        assert wrong.status_code == 403 and READ_TOKEN not in wrong.text
        right = httpx.get(
            url + "/topics",
            headers={"Authorization": f"Bearer {READ_TOKEN}", "Origin": "http://ui.example"},
            timeout=30,
        )
        assert right.status_code == 200
        assert right.headers["access-control-allow-origin"] == "http://ui.example"
        other = httpx.get(url + "/healthz", headers={"Origin": "http://evil.example"}, timeout=30)
        assert "access-control-allow-origin" not in other.headers
        assert httpx.get(url + "/healthz", timeout=30).json() == {"ok": True}
