"""``/metrics`` and ``/status`` against a real ingestion: mock broker, PostgreSQL, Dagster run.

The values come from the shared state (warehouse state tables, broker watermarks and
timestamps, the Dagster instance), read by the API process at scrape time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from pipeline_platform.cli.main import main
from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.integration.api_server import api_server
from pipeline_platform_tests.integration.test_materialize_cli import FIXTURE, materialize, wifi
from pipeline_platform_tests.kafka import produce

# A topic of its own: the session's broker is shared with the other tests.
TOPIC = "metrics.network.wifi.raw"
ASSET = "warehouse/device_network_wifi_raw"
LABELS = {"topic": TOPIC, "table": "device_network_wifi_raw", "data_source": "warehouse"}


@pytest.fixture
def environment(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> dict[str, str]:
    registry = tmp_path / "registry.yaml"
    registry.write_text(FIXTURE.read_text().replace("device.network.wifi.raw", TOPIC))
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_registry_engine(registry_url)
    upgrade_registry(engine)
    import_document(engine, load_document(registry), actor="test")
    engine.dispose()
    home = tmp_path / "home"
    home.mkdir()
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_REGISTRY_URL": registry_url,
        "PIPELINE_WAREHOUSE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url + "/metrics", timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def of(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_and_status_follow_a_real_ingestion(
    environment: dict[str, str],
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.time()
    messages: list[tuple[int | None, bytes | None, bytes | None]] = [
        (second % 3, f"dev-{second % 3}".encode(), wifi(second % 3, second, -second))
        for second in range(30)
    ]
    messages.append((0, b"dev-1", b'{"device_id": "dev-1", "recorded_at": '))  # malformed
    produce(kafka_bootstrap, TOPIC, messages)
    result = materialize(environment, ASSET)
    assert result.returncode == 0, result.stderr[-3000:]

    with api_server(environment) as url:
        samples = scrape(url)
        lag = {
            partition: of(
                samples, "pipeline_platform_consumer_lag_messages", **LABELS, partition=partition
            )
            for partition in ("0", "1", "2", "3")
        }
        assert lag == {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0}
        assert of(samples, "pipeline_platform_rows_written_total", **LABELS) == 30
        assert of(samples, "pipeline_platform_dead_letters_total", **LABELS, reason="parse") == 1
        assert of(samples, "pipeline_platform_consumer_lag_seconds", **LABELS) == 0
        last_event = of(samples, "pipeline_platform_last_event_timestamp_seconds", **LABELS)
        assert started - 5 <= last_event <= time.time()
        jobs = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "pipeline_platform_last_run_success"
        }
        assert list(jobs.values()) == [1.0]
        assert of(samples, "pipeline_platform_registry_revision") == 1
        assert of(samples, "pipeline_platform_registry_up") == 1

        status = httpx.get(url + "/status", timeout=60).json()
        row = next(t for t in status["tables"] if t["topic"] == TOPIC)
        assert row["lag_messages"] == 0
        assert row["rows_written"] == 30
        assert row["dead_letters_24h"] == {"parse": 1}
        assert row["last_run"]["status"] == "SUCCESS"
        assert status["registry"]["revision"] == 1

        # The CLI prints the same body from the same state code.
        for name in ("DAGSTER_HOME", "PIPELINE_REGISTRY_URL", "PIPELINE_WAREHOUSE_URL"):
            monkeypatch.setenv(name, environment[name])
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
        assert main(["status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == status

        # Five messages nobody ingested yet: lag in messages and in seconds, after the cache.
        produce(kafka_bootstrap, TOPIC, [(1, b"dev-9", wifi(9, s, -1)) for s in range(5)])
        time.sleep(6)
        samples = scrape(url)
        assert of(samples, "pipeline_platform_consumer_lag_messages", **LABELS, partition="1") == 5
        assert of(samples, "pipeline_platform_consumer_lag_seconds", **LABELS) > 0
        row = next(
            t
            for t in httpx.get(url + "/status", timeout=60).json()["tables"]
            if t["topic"] == TOPIC
        )
        assert row["lag_messages"] == 5
        assert row["lag_seconds"] > 0
