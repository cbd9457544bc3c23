"""PostgreSQL restarted and the broker killed in the middle of a run: nothing lost or doubled.

Each test ingests in small batches into an append-only table (a duplicate would show as a
repeated sequence number) and breaks a server after the first committed batches: the run must
fail cleanly (or finish), and the next run must complete with every message exactly once.
"""

from __future__ import annotations

import signal
import uuid
from typing import Any

import orjson
import psycopg
import pytest

from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform_tests.kafka import mock_broker_process, produce
from pipeline_platform_tests.servers import create_database, private_postgres, restart_postgres

PER_PARTITION = 3000
PARTITIONS = 4


def make_topic() -> Topic:
    suffix = uuid.uuid4().hex[:8]
    return Topic.model_validate(
        {
            "name": f"test.restart.{suffix}",
            "table": {
                "name": f"restart_{suffix}",
                "mappings": [
                    {"source": "p", "column": "p", "type": "integer", "required": True},
                    {"source": "seq", "column": "seq", "type": "integer", "required": True},
                ],
            },
        }
    )


def messages() -> list[tuple[int | None, bytes | None, bytes | None]]:
    """The same messages in the same partitions every time (so offsets match on a new broker)."""
    return [
        (p, None, orjson.dumps({"p": p, "seq": i}))
        for i in range(PER_PARTITION)
        for p in range(PARTITIONS)
    ]


def assert_exactly_once(url: str, topic: Topic) -> None:
    assert topic.table is not None
    with psycopg.connect(postgres_conninfo(url)) as conn:
        count, distinct = conn.execute(
            f"SELECT count(*), count(DISTINCT (p, seq)) FROM {topic.table.name}"
        ).fetchone() or (0, 0)
        offsets = conn.execute(
            "SELECT partition, next_offset FROM pp_ingestion_offsets WHERE topic = %s "
            "ORDER BY partition",
            (topic.name,),
        ).fetchall()
    assert (count, distinct) == (PER_PARTITION * PARTITIONS,) * 2
    assert offsets == [(p, PER_PARTITION) for p in range(PARTITIONS)]


def committed_consistently(url: str, topic: Topic) -> int:
    """After a failed run: rows are exactly the stored offsets' prefixes of each partition."""
    assert topic.table is not None
    with psycopg.connect(postgres_conninfo(url)) as conn:
        stored = dict(
            conn.execute(
                "SELECT partition, next_offset FROM pp_ingestion_offsets WHERE topic = %s",
                (topic.name,),
            ).fetchall()
        )
        rows = conn.execute(f"SELECT p, count(*), max(seq) FROM {topic.table.name} GROUP BY p")
        for p, count, top in rows.fetchall():
            assert count == stored[p] == top + 1
    return sum(stored.values())


@pytest.mark.slow
def test_postgres_restart_mid_run() -> None:
    with private_postgres() as admin, mock_broker_process() as (_broker, bootstrap):
        url = create_database(admin)
        topic = make_topic()
        produce(bootstrap, topic.name, messages())
        restarts = 0

        def progress(line: str) -> None:
            nonlocal restarts
            if " rows, " in line and restarts == 0:
                restarts += 1
                restart_postgres(admin)

        failure: Exception | None = None
        try:
            ingest_table(
                topic,
                warehouse_url=url,
                kafka_config={"bootstrap.servers": bootstrap},
                run_id="broken",
                batch_size=500,
                progress=progress,
            )
        except Exception as error:  # the run fails for a retry: the connection went away
            failure = error
        assert restarts == 1
        assert isinstance(failure, psycopg.OperationalError), failure
        assert 0 < committed_consistently(url, topic) < PER_PARTITION * PARTITIONS
        result = ingest_table(
            topic, warehouse_url=url, kafka_config={"bootstrap.servers": bootstrap}, run_id="next"
        )
        assert result.lag_left == 0
        assert_exactly_once(url, topic)


@pytest.mark.slow
def test_broker_killed_and_restarted_mid_run(postgres_url: str) -> None:
    topic = make_topic()
    # Small fetches of small record batches, so the consumer still has most messages to fetch
    # when the broker dies (a broker returns whole record batches whatever the fetch size:
    # with the producer's default 10,000-message batches the first fetch held every message).
    throttle = {"queued.max.messages.kbytes": "64", "max.partition.fetch.bytes": "2048"}
    with mock_broker_process() as (broker, bootstrap):
        produce(bootstrap, topic.name, messages(), {"batch.num.messages": 20, "linger.ms": 0})
        killed = 0

        def progress(line: str) -> None:
            nonlocal killed
            if " rows, " in line and killed == 0:
                killed += 1
                broker.send_signal(signal.SIGKILL)
                broker.wait()

        config: dict[str, Any] = {"bootstrap.servers": bootstrap, **throttle}
        with pytest.raises(Exception) as failure:
            ingest_table(
                topic,
                warehouse_url=postgres_url,
                kafka_config=config,
                run_id="broken",
                batch_size=500,
                progress=progress,
                idle_timeout=3.0,
                broker_timeout=3.0,
            )
        assert killed == 1
        assert "no message from" in str(failure.value) or "Kafka" in str(failure.value)
    done = committed_consistently(postgres_url, topic)
    assert 0 < done < PER_PARTITION * PARTITIONS
    # The broker comes back with its log (the same messages at the same offsets).
    with mock_broker_process() as (_broker, bootstrap):
        produce(bootstrap, topic.name, messages())
        result = ingest_table(
            topic,
            warehouse_url=postgres_url,
            kafka_config={"bootstrap.servers": bootstrap},
            run_id="next",
        )
        assert result.messages == PER_PARTITION * PARTITIONS - done
        assert result.lag_left == 0
    assert_exactly_once(postgres_url, topic)
