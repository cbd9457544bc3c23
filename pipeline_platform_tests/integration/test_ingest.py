"""Ingestion against a real PostgreSQL server and a real Kafka-protocol broker over TCP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.ingestion.decode import DecodeOptions
from pipeline_platform.ingestion.reader import group_id_for
from pipeline_platform.ingestion.service import (
    BrokerUnavailable,
    ingest_table,
    list_dead_letters,
    read_lag,
    replay_dead_letters,
)
from pipeline_platform_tests.integration.ingest_helpers import (
    MAPPINGS,
    PARTITIONS,
    good,
    kafka,
    make_topic,
    poison,
    rows_of,
)
from pipeline_platform_tests.kafka import produce
from pipeline_platform_tests.servers import free_port


def test_poison_corpus_is_dead_lettered_and_good_messages_ingested(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    topic = make_topic()
    bad = poison()
    messages: list[tuple[int | None, bytes | None, bytes | None]] = []
    for i in range(400):
        messages.append((i % PARTITIONS, f"k{i}".encode(), good(i)))
        if i % 25 == 0 and i // 25 < len(bad):
            messages.append((i % PARTITIONS, b"bad", bad[i // 25][0]))
    produce(kafka_bootstrap, topic.name, messages)
    lines: list[str] = []
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="run-1",
        batch_size=64,
        progress=lines.append,
        decode_options=DecodeOptions(max_message_bytes=2048),
    )
    assert result.messages == 400 + len(bad)
    assert result.rows_written == 400
    assert result.dead_letters == len(bad)
    assert result.lag_left == 0
    assert lines
    assert sum(end - start for start, end in result.offsets.values()) == result.messages
    table = topic.table
    assert table is not None
    assert rows_of(postgres_url, f"SELECT count(*) FROM {table.name}") == [(400,)]
    stored = list_dead_letters(topic, warehouse_url=postgres_url, limit=None)
    assert len(stored) == len(bad)
    by_raw = {d.raw or b"": d for d in stored}
    for raw, prefix in bad:
        letter = by_raw[raw]
        assert letter.reason.startswith(prefix), (raw[:40], letter.reason)
        assert letter.key == b"bad"
        assert letter.run_id == "run-1"
    row = rows_of(
        postgres_url,
        f"SELECT signal_dbm, level, ok, day::text, first_tag, payload->>'rssi' "
        f"FROM {table.name} WHERE device_id = 'dev-1'",
    )
    assert row == [(-41, 0.1, False, "2024-05-01", "home", "-41")]
    # A second run finds nothing new.
    again = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="run-2"
    )
    assert (again.messages, again.rows_written, again.dead_letters) == (0, 0, 0)
    lag = read_lag(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), timeout=5
    )
    assert sorted(lag) == list(range(PARTITIONS))
    assert all(p.lag == 0 for p in lag.values())
    # Consumer-group offsets were committed to Kafka after the database commit.
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group_id_for("warehouse", table.name)}
    )
    try:
        committed = consumer.committed(
            [TopicPartition(topic.name, p) for p in range(PARTITIONS)], timeout=10
        )
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == {
        p: end for p, (_start, end) in result.offsets.items()
    }


def test_upsert_last_message_for_a_key_wins(postgres_url: str, kafka_bootstrap: str) -> None:
    topic = make_topic()
    # The same 10 keys, 6 versions each, on one partition (so order is defined).
    messages = [
        (0, None, good(k, device=f"dev-{k}", rssi=-version))
        for version in range(1, 7)
        for k in range(10)
    ]
    produce(kafka_bootstrap, topic.name, messages)
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="r",
        batch_size=25,  # versions of a key fall both within and across batches
    )
    assert result.messages == 60
    assert topic.table is not None
    rows = rows_of(postgres_url, f"SELECT device_id, signal_dbm FROM {topic.table.name}")
    assert sorted(rows) == sorted((f"dev-{k}", -6) for k in range(10))


def test_append_only_keeps_every_row(postgres_url: str, kafka_bootstrap: str) -> None:
    topic = make_topic(key=())
    produce(kafka_bootstrap, topic.name, [(i % 2, None, good(i % 5)) for i in range(50)])
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="r",
        batch_size=16,
    )
    assert result.rows_written == 50
    assert topic.table is not None
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(50,)]


def test_creates_table_then_adds_new_mapped_columns(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    first = make_topic(mappings=MAPPINGS[:3])
    assert first.table is not None
    produce(kafka_bootstrap, first.name, [(0, None, good(i)) for i in range(5)])
    ingest_table(first, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="a")
    columns = rows_of(
        postgres_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_name = '{first.table.name}' ORDER BY ordinal_position",
    )
    assert columns == [
        ("device_id", "text"),
        ("recorded_at", "timestamp with time zone"),
        ("signal_dbm", "bigint"),
    ]
    key = rows_of(
        postgres_url,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        f"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '{first.table.name}'::regclass "
        "AND i.indisprimary",
    )
    assert sorted(k[0] for k in key) == ["device_id", "recorded_at"]
    second = make_topic(mappings=MAPPINGS, name=first.name, table=first.table.name)
    produce(kafka_bootstrap, first.name, [(0, None, good(i)) for i in range(5, 8)])
    result = ingest_table(
        second, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="b"
    )
    assert result.messages == 3
    rows = rows_of(
        postgres_url,
        f"SELECT device_id, level, day FROM {first.table.name} ORDER BY device_id",
    )
    assert len(rows) == 8
    assert {r[0] for r in rows if r[1] is not None} == {"dev-5", "dev-6", "dev-7"}


def test_replay_after_registry_fix(postgres_url: str, kafka_bootstrap: str) -> None:
    strict = [
        MAPPINGS[0],
        MAPPINGS[1],
        {"source": "payload.rssi", "column": "signal_dbm", "type": "integer"},
    ]
    topic = make_topic(mappings=strict)
    assert topic.table is not None
    messages = [(0, None, good(i)) for i in range(5)]
    messages += [(0, None, good(i, rssi="weak")) for i in range(5, 8)]  # type: ignore[arg-type]
    messages.append((0, None, b"{broken"))
    produce(kafka_bootstrap, topic.name, messages)
    result = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="r1"
    )
    assert (result.rows_written, result.dead_letters) == (5, 4)
    # The registry fix: keep the reading as text in a new column (the bigint column stays).
    fixed_mappings = [
        *strict[:2],
        {"source": "payload.rssi", "column": "signal_text", "type": "string"},
    ]
    fixed = make_topic(mappings=fixed_mappings, name=topic.name, table=topic.table.name)
    replay = replay_dead_letters(fixed, warehouse_url=postgres_url, run_id="replay")
    assert (replay.replayed, replay.rows_written, replay.still_failing) == (4, 3, 1)
    left = list_dead_letters(fixed, warehouse_url=postgres_url)
    assert len(left) == 1 and left[0].reason.startswith("malformed JSON")
    assert left[0].run_id == "replay"
    rows = rows_of(
        postgres_url, f"SELECT count(*) FROM {topic.table.name} WHERE signal_text = 'weak'"
    )
    assert rows == [(3,)]


def test_max_messages_leaves_lag(postgres_url: str, kafka_bootstrap: str) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic.name, [(i % PARTITIONS, None, good(i)) for i in range(100)])
    first = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="r1",
        max_messages=30,
        batch_size=10,
    )
    assert first.messages == 30
    assert first.lag_left == 70
    lag = read_lag(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), timeout=5
    )
    assert sum(p.lag for p in lag.values()) == 70
    second = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="r2"
    )
    assert second.messages == 70
    assert topic.table is not None
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(100,)]


def test_read_lag_raises_broker_unavailable_quickly(postgres_url: str) -> None:
    topic = make_topic()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        read_lag(
            topic,
            warehouse_url=postgres_url,
            kafka_config={"bootstrap.servers": f"127.0.0.1:{free_port()}"},
            timeout=1.0,
        )
    assert time.monotonic() - started < 5


def test_sqlite_warehouse(tmp_path: Any, kafka_bootstrap: str) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    topic = make_topic()
    bad = poison()
    messages = [(i % PARTITIONS, None, good(i % 40)) for i in range(120)]
    messages += [(0, None, raw) for raw, _ in bad]
    produce(kafka_bootstrap, topic.name, messages)
    result = ingest_table(
        topic,
        warehouse_url=url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="s",
        batch_size=50,
        decode_options=DecodeOptions(max_message_bytes=2048),
    )
    assert result.dead_letters == len(bad)
    import sqlite3

    assert topic.table is not None
    with sqlite3.connect(tmp_path / "warehouse.db") as conn:
        assert conn.execute(f"SELECT count(*) FROM {topic.table.name}").fetchone() == (40,)
        row = conn.execute(
            f"SELECT recorded_at, ok, scan_id FROM {topic.table.name} WHERE device_id='dev-1'"
        ).fetchone()
    assert row == ("2024-05-01T12:00:01+00:00", 0, str(uuid.UUID(int=1)))
    again = ingest_table(topic, warehouse_url=url, kafka_config=kafka(kafka_bootstrap), run_id="t")
    assert again.messages == 0
    assert len(list_dead_letters(topic, warehouse_url=url)) == len(bad)
