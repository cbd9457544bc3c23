"""Exactly once under SIGKILL: a subprocess ingesting in small batches is killed at random points.

Every killed run is redone from the stored offsets by the next one; the final state must hold
each good message exactly once (append only: no duplicate sequence numbers; upsert: one row per
unique key with the last value), every poison message exactly once as a dead letter, and a
further run must find nothing to do.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid

import orjson
import psycopg
import pytest

from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import postgres_conninfo
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
    batch_size=int(sys.argv[5]), progress=progress)
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


@pytest.mark.slow
@pytest.mark.parametrize("append_only", [False, True], ids=["upsert", "append"])
def test_exactly_once_under_sigkill(
    append_only: bool, postgres_url: str, kafka_bootstrap: str
) -> None:
    rng = random.Random(1234 if append_only else 4321)
    topic = make_topic(append_only)
    assert topic.table is not None
    messages: list[tuple[int | None, bytes | None, bytes | None]] = []
    last_seq: dict[str, int] = {}
    poison = 0
    for seq in range(GOOD):
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
    assert kills >= 10
    final = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="final",
    )
    assert final.lag_left == 0
    table = topic.table.name
    with psycopg.connect(postgres_conninfo(postgres_url)) as conn:
        count, distinct_seq, distinct_keys = conn.execute(
            f"SELECT count(*), count(DISTINCT seq), count(DISTINCT device_id) FROM {table}"
        ).fetchone() or (0, 0, 0)
        dead = conn.execute(
            'SELECT count(*), count(DISTINCT (partition, "offset")) FROM pp_dead_letters'
        ).fetchone()
        if append_only:
            assert (count, distinct_seq) == (GOOD, GOOD)
        else:
            assert count == distinct_keys == UNIQUE_KEYS
            stored = dict(conn.execute(f"SELECT device_id, seq FROM {table}").fetchall())
            assert stored == last_seq
        assert dead == (poison, poison)
        offsets = conn.execute(
            "SELECT sum(next_offset) FROM pp_ingestion_offsets WHERE topic = %s", (topic.name,)
        ).fetchone()
    assert offsets == (len(messages),)
    again = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="again",
    )
    assert (again.messages, again.rows_written, again.dead_letters) == (0, 0, 0)
