"""Exactly once under SIGKILL: a subprocess ingesting in small batches is killed at random points.

Every killed run is redone from the stored offsets by the next one; the final state must hold
each good message exactly once (append only: no duplicate sequence numbers; upsert: one row per
unique key with the last value), every poison message exactly once as a dead letter, and a
further run must find nothing to do.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import orjson
import psycopg
import pytest

from pipeline_platform.factory import naming
from pipeline_platform.factory.sensors import LagSensorOptions, evaluate_lag
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.document import RegistryDocument, Topic
from pipeline_platform.registry.store import import_document
from pipeline_platform.resources import KafkaResource, WarehouseResource
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform_tests.e2e.processes import command_line, wait_gone
from pipeline_platform_tests.kafka import produce

GOOD = 6000
POISON_EVERY = 97
UNIQUE_KEYS = 1500
KILLS = 12

WORKER = """
import sys, orjson
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.document import Topic
topic = Topic.model_validate(orjson.loads(sys.argv[1]))
def progress(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
result = ingest_table(topic, warehouse_url=sys.argv[2],
    kafka_config={"bootstrap.servers": sys.argv[3]}, run_id=sys.argv[4],
    batch_size=int(sys.argv[5]), progress=progress, worker_processes=sys.argv[6] == "1")
sys.stdout.write("DONE %d\\n" % result.messages)
"""


def make_topic(append_only: bool) -> Topic:
    suffix = uuid.uuid4().hex[:8]
    return Topic.model_validate(
        {
            "name": f"test.kill9.{suffix}",
            "partitions": 4,
            "table": {
                "name": f"kill9_{suffix}",
                "upsert_key": [] if append_only else ["device_id"],
                "mappings": [
                    {
                        "source": "device_id",
                        "column": "device_id",
                        "type": "string",
                        "required": True,
                    },
                    {"source": "seq", "column": "seq", "type": "integer", "required": True},
                ],
            },
        }
    )


def make_messages(
    rng: random.Random, good: int = GOOD
) -> tuple[list[tuple[int | None, bytes | None, bytes | None]], dict[str, int], int]:
    """Return the messages to produce, the last ``seq`` per device and the poison count."""
    messages: list[tuple[int | None, bytes | None, bytes | None]] = []
    last_seq: dict[str, int] = {}
    poison = 0
    for seq in range(good):
        device = f"dev-{rng.randrange(UNIQUE_KEYS)}" if seq >= UNIQUE_KEYS else f"dev-{seq}"
        # Keys stick to one partition (as Kafka's key partitioner does): order per key holds.
        partition = int(device.split("-")[1]) % 4
        messages.append(
            (partition, device.encode(), orjson.dumps({"device_id": device, "seq": seq}))
        )
        last_seq[device] = seq
        if seq % POISON_EVERY == 0:
            messages.append((seq % 4, None, b"{poison"))
            poison += 1
    return messages, last_seq, poison


def assert_exactly_once(
    postgres_url: str,
    topic: Topic,
    *,
    good: int,
    last_seq: dict[str, int],
    poison: int,
    produced: int,
) -> None:
    """Each good message once (append) or one row per key with its last value (upsert)."""
    assert topic.table is not None
    table = topic.table.name
    with psycopg.connect(postgres_conninfo(postgres_url)) as conn:
        count, distinct_seq, distinct_keys = conn.execute(
            f"SELECT count(*), count(DISTINCT seq), count(DISTINCT device_id) FROM {table}"
        ).fetchone() or (0, 0, 0)
        dead = conn.execute(
            'SELECT count(*), count(DISTINCT (partition, "offset")) FROM pp_dead_letters '
            "WHERE topic = %s",
            (topic.name,),
        ).fetchone()
        if not topic.table.upsert_key:
            assert (count, distinct_seq) == (good, good), table
        else:
            assert count == distinct_keys == len(last_seq), table
            stored = dict(conn.execute(f"SELECT device_id, seq FROM {table}").fetchall())
            assert stored == last_seq, table
        assert dead == (poison, poison), table
        offsets = conn.execute(
            "SELECT sum(next_offset) FROM pp_ingestion_offsets WHERE topic = %s", (topic.name,)
        ).fetchone()
    assert offsets == (produced,), table


@pytest.mark.slow
@pytest.mark.parametrize(
    ("append_only", "worker_processes"),
    [(False, False), (True, False), (False, True)],
    ids=["upsert", "append", "upsert-worker-processes"],
)
def test_exactly_once_under_sigkill(
    append_only: bool, worker_processes: bool, postgres_url: str, kafka_bootstrap: str
) -> None:
    """Only the ingesting process is killed: its worker processes must die with it."""
    rng = random.Random(1234 if append_only else 4321)
    topic = make_topic(append_only)
    assert topic.table is not None
    # Two worker processes commit 40-message batches every millisecond or two: a killed run
    # commits ~700 messages before its kill lands, so they get four times the messages.
    good = GOOD * 4 if worker_processes else GOOD
    messages, last_seq, poison = make_messages(rng, good)
    produce(kafka_bootstrap, topic.name, messages)
    topic_json = orjson.dumps(topic.model_dump(mode="json", by_alias=True)).decode()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for attempt in range(KILLS):
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                topic_json,
                postgres_url,
                kafka_bootstrap,
                f"run-{attempt}",
                "40",
                "1" if worker_processes else "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        # Wait for a random number of committed batches, then kill at a random instant.
        wanted = rng.randrange(1, 5)
        seen = 0
        finished = False
        while seen < wanted:
            line = process.stdout.readline()
            if not line or line.startswith("DONE"):
                finished = True
                break
            if " rows, " in line:
                seen += 1
        if not finished:
            time.sleep(rng.uniform(0, 0.03))
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
        process.stdout.close()
        assert not _survivors(f"run-{attempt}"), "a worker process outlived its killed parent"
    assert kills >= 10
    final = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="final",
    )
    assert final.lag_left == 0
    assert_exactly_once(
        postgres_url,
        topic,
        good=good,
        last_seq=last_seq,
        poison=poison,
        produced=len(messages),
    )
    again = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="again",
    )
    assert (again.messages, again.rows_written, again.dead_letters) == (0, 0, 0)


def _survivors(marker: str, seconds: float = 5.0) -> set[int]:
    """Live (non-zombie) processes whose command line holds ``marker``, after ``seconds``."""
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    return wait_gone([pid for pid in pids if marker in command_line(pid)], seconds)


PACKED_TABLES = 4
PACKED_GOOD = 3000
PACKED_KILLS = 6


def _registry(tmp_path: Path, topics: list[Topic]) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_registry_engine(url)
    upgrade_registry(engine)
    import_document(engine, RegistryDocument(topics=tuple(topics)), actor="test")
    engine.dispose()
    return url


def _packed_request(
    topics: list[Topic], postgres_url: str, kafka_bootstrap: str, cap: int
) -> dg.RunRequest | None:
    """What the Kafka sensor asks for now: one packed run over every lagging table."""
    targets = [
        TableTarget(naming.table_key("warehouse", t.table.name), t, t.table, None)
        for t in topics
        if t.table is not None
    ]
    options = LagSensorOptions(max_messages_per_run=cap, max_tables_per_run=PACKED_TABLES)
    with dg.instance_for_test() as instance:
        result = evaluate_lag(
            dg.build_sensor_context(instance=instance),
            targets,
            warehouse=WarehouseResource(url=postgres_url),
            kafka=KafkaResource(bootstrap_servers=kafka_bootstrap),
            options=options,
        )
    if not result.run_requests:
        return None
    [request] = result.run_requests
    return request


def _materialize(env: dict[str, str], request: dg.RunRequest) -> subprocess.Popen[str]:
    assert request.asset_selection is not None
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "pipeline_platform.definitions",
        "--select",
        ",".join(key.to_user_string() for key in request.asset_selection),
        "--config-json",
        json.dumps(request.run_config),
    ]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # kill -9 hits the run worker and anything it started
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_packed_runs_ingest_every_table_exactly_once_under_sigkill(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str
) -> None:
    """Sensor-packed runs (4 tables, capped per table) killed with SIGKILL mid-run, then redone."""
    rng = random.Random(2468)
    topics = [make_topic(append_only=i % 2 == 0) for i in range(PACKED_TABLES)]
    expected = []
    for topic in topics:
        messages, last_seq, poison = make_messages(rng, PACKED_GOOD)
        produce(kafka_bootstrap, topic.name, messages)
        expected.append((topic, last_seq, poison, len(messages)))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_REGISTRY_URL": _registry(tmp_path, topics),
        "PIPELINE_WAREHOUSE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PYTHONUNBUFFERED": "1",
    }
    kills = attempts = 0
    for _ in range(PACKED_KILLS):
        request = _packed_request(topics, postgres_url, kafka_bootstrap, cap=1200)
        if request is None:  # every table caught up before the kills ran out
            break
        assert request.asset_selection is not None
        if attempts == 0:  # all four lag: one packed run over them
            assert request.tags[naming.INGESTION_TAG] == "packed"
            assert len(request.asset_selection) == PACKED_TABLES
        attempts += 1
        process = _materialize(env, request)
        assert process.stdout is not None
        # Kill while a random table of the run is being ingested (after its log line; two
        # worker processes take a table each, a capped table takes tens of milliseconds).
        wanted = rng.randrange(1, len(request.asset_selection) + 1)
        seen = 0
        for line in process.stdout:
            if " - Ingesting " in line:
                seen += 1
                if seen == wanted:
                    time.sleep(rng.uniform(0.0, 0.05))
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGKILL)
                        kills += 1
                    break
        process.wait(timeout=120)
        process.stdout.close()
    # A later run may hold fewer tables (one that caught up is no longer lagging); at most one
    # run may end before its kill (its tables finished first).
    assert attempts >= 2 and kills >= attempts - 1
    runs = 0
    while (request := _packed_request(topics, postgres_url, kafka_bootstrap, cap=5000)) is not None:
        runs += 1
        assert runs <= 5, "tables still lagging after 5 uncapped runs"
        process = _materialize(env, request)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    for topic, last_seq, poison, produced in expected:
        assert_exactly_once(
            postgres_url,
            topic,
            good=PACKED_GOOD,
            last_seq=last_seq,
            poison=poison,
            produced=produced,
        )
