"""``dagster asset materialize`` on a table asset ingests what is available, once.

Real parts throughout: the code location loaded by the Dagster CLI in its own process, a registry
in SQLite, the warehouse in a real PostgreSQL database, the mock Kafka broker over TCP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import pytest

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.kafka import produce

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
TOPIC = "device.network.wifi.raw"
ASSET = "warehouse/device_network_wifi_raw"


def wifi(device: int, second: int, rssi: int) -> bytes:
    return orjson.dumps(
        {
            "device_id": f"dev-{device}",
            "recorded_at": f"2026-11-22T10:00:{second:02d}Z",
            "payload": {"ssid": "home", "rssi": rssi, "tags": ["indoor"]},
        }
    )


@pytest.fixture
def environment(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> dict[str, str]:
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_registry_engine(registry_url)
    upgrade_registry(engine)
    import_document(engine, load_document(FIXTURE), actor="test")
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


def materialize(env: dict[str, str], asset: str = ASSET) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "pipeline_platform.definitions",
        "--select",
        asset,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def table_rows(postgres_url: str) -> list[tuple[str, str, int]]:
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT device_id, to_char(recorded_at AT TIME ZONE 'UTC', 'SS'), signal_dbm "
            "FROM device_network_wifi_raw ORDER BY 1, 2"
        ).fetchall()
        dead = conn.execute("SELECT count(*) FROM pp_dead_letters").fetchone()
    assert dead is not None
    return [(d, s, int(r)) for d, s, r in rows] + [("dead", "", int(dead[0]))]


def test_materialize_ingests_what_is_available_then_nothing_new(
    environment: dict[str, str], postgres_url: str, kafka_bootstrap: str
) -> None:
    messages: list[tuple[int | None, bytes | None, bytes | None]] = []
    for second in range(30):
        messages.append((None, f"dev-{second % 3}".encode(), wifi(second % 3, second, -second)))
    # The same key again (last wins) and one poison message.
    messages.append((None, b"dev-0", wifi(0, 0, -99)))
    messages.append((None, b"dev-1", b'{"device_id": "dev-1", "recorded_at": '))
    produce(kafka_bootstrap, TOPIC, messages)

    first = materialize(environment)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = table_rows(postgres_url)
    assert len(rows) == 31  # 30 unique keys + the dead-letter count line
    assert ("dev-0", "00", -99) in rows
    assert rows[-1] == ("dead", "", 1)

    second = materialize(environment)
    assert second.returncode == 0, second.stderr[-3000:]
    assert table_rows(postgres_url) == rows
    assert written_per_run(environment) == [30, 0]


def written_per_run(env: dict[str, str]) -> list[int]:
    """``rows_written`` of each materialization of the asset, oldest first."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(env["DAGSTER_HOME"])
    with dg.DagsterInstance.from_ref(ref) as instance:
        records = instance.fetch_materializations(dg.AssetKey.from_user_string(ASSET), limit=10)
        written = []
        for record in reversed(records.records):
            materialization = record.asset_materialization
            assert materialization is not None
            written.append(int(materialization.metadata["rows_written"].value))  # type: ignore[arg-type]
    return written
