"""Hot reload end to end: `dagster dev`, change the registry, see the new asset in the UI's API.

Starts `dagster dev` on a temporary DAGSTER_HOME with a SQLite registry, imports a registry with
one more topic, and waits until the webserver's GraphQL API lists the new asset — without
restarting anything (the registry reload sensor asks the webserver to reload the location).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_platform.registry.document import RegistryDocument, Topic
from pipeline_platform.registry.validation import load_document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
NEW_TOPIC = "device.location.gps"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _import(url: str, document: RegistryDocument) -> None:
    from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
    from pipeline_platform.registry.store import import_document

    engine = create_registry_engine(url)
    try:
        upgrade_registry(engine)
        import_document(engine, document, actor="e2e-test", source="test")
    finally:
        engine.dispose()


def _asset_keys(port: int) -> set[str]:
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=query,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    nodes = (body.get("data") or {}).get("assetNodes") or []
    return {"/".join(node["assetKey"]["path"]) for node in nodes}


def _wait_for(port: int, key: str, deadline: float, process: subprocess.Popen[bytes]) -> float:
    while time.monotonic() < deadline:
        assert process.poll() is None, "dagster dev exited"
        try:
            if key in _asset_keys(port):
                return time.monotonic()
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{key} did not appear")


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    _import(registry_url, load_document(FIXTURE))
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_REGISTRY_URL": registry_url,
        "PIPELINE_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "PIPELINE_DAGSTER_WEBSERVER_HOST": "127.0.0.1",
        "PIPELINE_DAGSTER_WEBSERVER_PORT": str(port),
        "PIPELINE_RELOAD_SENSOR_INTERVAL": "5",
    }
    env.pop("PIPELINE_REGISTRY_FILE", None)
    dagster = str(Path(sys.executable).with_name("dagster"))
    log = (tmp_path / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [dagster, "dev", "-m", "pipeline_platform.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield port, registry_url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_registry_change_appears_without_restart(
    dagster_dev: tuple[int, str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, registry_url, process = dagster_dev
    start = time.monotonic()
    _wait_for(port, "kafka/device.audio.raw", start + 120, process)
    assert f"kafka/{NEW_TOPIC}" not in _asset_keys(port)

    document = load_document(FIXTURE)
    new_topic = Topic(name=NEW_TOPIC, category="device", source="location", datatype="gps")
    changed = document.model_copy(update={"topics": (*document.topics, new_topic)})
    imported = time.monotonic()
    _import(registry_url, changed)

    seen = _wait_for(port, f"kafka/{NEW_TOPIC}", imported + 60, process)
    assert seen - imported < 60
    assert process.poll() is None  # same dagster dev process throughout
