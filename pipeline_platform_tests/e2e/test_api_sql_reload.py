"""Spec §2.2 end to end: SQL statements run verbatim with sqlite3, ``POST /reload-config``, and
the new topic is an ingested table asset in the running ``dagster dev``.

Real parts: ``dagster dev`` (webserver, daemon, code server) on a SQLite registry, the API
server in its own process, the mock broker, PostgreSQL as the warehouse, the Dagster CLI for the
materialization.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
import pytest

from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.e2e.dagster_dev import dagster_dev
from pipeline_platform_tests.e2e.test_definitions_hot_reload import FIXTURE, _asset_keys, _import
from pipeline_platform_tests.integration.api_server import api_server
from pipeline_platform_tests.integration.sql_statements import INSERTS, run_sql
from pipeline_platform_tests.integration.test_materialize_cli import materialize
from pipeline_platform_tests.kafka import produce

TOKEN = "e2e-write-token"
TOPIC = "device.sensor.new.raw"
ASSET = "warehouse/device_sensor_new_raw"


@pytest.fixture
def stack(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str
) -> Iterator[tuple[int, dict[str, str]]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    _import(registry_url, load_document(FIXTURE))
    env = {
        "PIPELINE_REGISTRY_URL": registry_url,
        "PIPELINE_WAREHOUSE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PIPELINE_RELOAD_SENSOR_RUNNING": "0",  # the POST is what reloads here
    }
    with dagster_dev(home, env=env) as server:
        port = int(urlsplit(server.url).port or 0)
        yield (
            port,
            {
                **os.environ,
                **env,
                "DAGSTER_HOME": str(home),
                "PIPELINE_DAGSTER_WEBSERVER_HOST": "127.0.0.1",
                "PIPELINE_DAGSTER_WEBSERVER_PORT": str(port),
                "PIPELINE_API_TOKEN": TOKEN,
            },
        )


def _wait_for_asset(port: int, key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if key in _asset_keys(port):
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{key} did not appear")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sql_insert_then_reload_config_makes_an_ingested_asset(
    stack: tuple[int, dict[str, str]], postgres_url: str, kafka_bootstrap: str
) -> None:
    port, env = stack
    _wait_for_asset(port, "warehouse/device_audio_raw", 120)
    run_sql(env["PIPELINE_REGISTRY_URL"], INSERTS)
    assert ASSET not in _asset_keys(port)

    with api_server(env) as url:
        refused = httpx.post(url + "/reload-config", timeout=60)
        assert refused.status_code == 403
        response = httpx.post(
            url + "/reload-config", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"reloaded": True, "revision": 2}
        keys = _asset_keys(port)
        assert ASSET in keys and f"kafka/{TOPIC}" in keys
        assert TOPIC in httpx.get(url + "/topics", timeout=30).json()["topics"]

    history = subprocess.run(
        [sys.executable, "-m", "pipeline_platform.cli.main", "registry", "history", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    newest = json.loads(history.stdout)[0]
    assert (newest["revision"], newest["actor"]) == (2, "sql")
    assert newest["summary"]["topics"]["added"] == [TOPIC]

    produce(
        kafka_bootstrap,
        TOPIC,
        [
            (None, b"s1", orjson.dumps({"device_id": "s1", "timestamp": 1764672000, "value": 1.5})),
            (None, b"s2", orjson.dumps({"device_id": "s2", "timestamp": 1764672001, "value": 2})),
        ],
    )
    done = materialize(env, ASSET)
    assert done.returncode == 0, done.stderr[-3000:]
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT device_id, sensor_value FROM device_sensor_new_raw ORDER BY 1"
        ).fetchall()
    assert rows == [("s1", 1.5), ("s2", 2.0)]
