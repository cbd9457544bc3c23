"""Parallel ingestion (a worker per group of partitions) into PostgreSQL from the mock broker."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.ingestion.decode import DecodeOptions
from pipeline_platform.ingestion.reader import group_id_for
from pipeline_platform.ingestion.service import ingest_table, list_dead_letters
from pipeline_platform_tests.integration.ingest_helpers import (
    PARTITIONS,
    good,
    kafka,
    make_topic,
    poison,
    rows_of,
)
from pipeline_platform_tests.kafka import produce


def test_parallel_workers_write_exact_rows_dead_letters_and_offsets(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    topic = make_topic()
    table = topic.table
    assert table is not None
    bad = poison()
    messages: list[tuple[int | None, bytes | None, bytes | None]] = []
    expected_dead: set[tuple[int, bytes]] = set()
    per_partition = [0] * PARTITIONS
    for i in range(600):
        partition = i % PARTITIONS
        messages.append((partition, None, good(i)))
        per_partition[partition] += 1
        if i % 37 == 0 and i // 37 < len(bad):
            messages.append((partition, b"bad", bad[i // 37][0]))
            expected_dead.add((partition, bad[i // 37][0]))
            per_partition[partition] += 1
    # The same upsert key on every partition, many times: workers upsert it concurrently.
    shared = [
        (p, None, good(7_000 + n, device="shared", rssi=-n))
        for n in range(40)
        for p in range(PARTITIONS)
    ]
    for partition, _key, _value in shared:
        per_partition[partition] += 1
    messages.extend(shared)
    produce(kafka_bootstrap, topic.name, messages)
    lines: list[str] = []
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="par",
        batch_size=40,
        progress=lines.append,
        decode_options=DecodeOptions(max_message_bytes=2048),
        parallelism=2,
    )
    shared_keys = 40  # distinct recorded_at values of good(7_000 + n), n < 40
    assert result.messages == len(messages)
    assert result.dead_letters == len(bad)
    assert result.lag_left == 0
    assert result.offsets == {p: (0, per_partition[p]) for p in range(PARTITIONS)}
    assert any(line.startswith("[worker 2/2]") for line in lines)
    count = rows_of(postgres_url, f"SELECT count(*) FROM {table.name}")
    assert count == [(600 + shared_keys,)]
    shared_rows = rows_of(
        postgres_url,
        f"SELECT count(*), min(signal_dbm), max(signal_dbm) FROM {table.name} "
        "WHERE device_id = 'shared'",
    )
    assert shared_rows[0][0] == shared_keys
    assert -39 <= shared_rows[0][1] <= shared_rows[0][2] <= 0
    stored = list_dead_letters(topic, warehouse_url=postgres_url, limit=None)
    assert {(d.partition, d.raw) for d in stored} == expected_dead
    assert all(d.run_id == "par" for d in stored)
    offsets = rows_of(
        postgres_url,
        "SELECT partition, next_offset FROM pp_ingestion_offsets "
        f"WHERE topic = '{topic.name}' ORDER BY partition",
    )
    assert offsets == [(p, per_partition[p]) for p in range(PARTITIONS)]
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
        p: per_partition[p] for p in range(PARTITIONS)
    }
    again = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="par-2"
    )
    assert (again.messages, again.rows_written, again.dead_letters) == (0, 0, 0)


def test_message_cap_is_shared_among_parallel_workers(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic.name, [(i % PARTITIONS, None, good(i)) for i in range(40)])
    progress: list[str] = []
    capped = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="capped",
        max_messages=7,
        parallelism=2,
        batch_size=2,
        progress=progress.append,
    )
    assert capped.messages == 7
    assert capped.lag_left == 33
    assert any(line.startswith("[worker 2/2]") for line in progress)
    rest = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="rest"
    )
    assert rest.messages == 33
    assert topic.table is not None
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(40,)]
