"""Parallel ingestion (a worker per group of partitions) into PostgreSQL from the mock broker.

Each test runs with thread workers and with forked worker processes (``worker_processes``).
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.ingestion import processes, service
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

MODES = pytest.mark.parametrize("worker_processes", [False, True], ids=["threads", "processes"])


def workers_seen(lines: list[str], forks: list[int], worker_processes: bool) -> bool:
    """Whether two workers ran: two forked workers, or thread workers (with progress lines).

    Forked workers call ``progress`` in their own process: their lines are not in ``lines``.
    """
    if worker_processes:
        return forks == [2]
    return forks == [] and any(line.startswith("[worker 2/2]") for line in lines)


@MODES
def test_parallel_workers_write_exact_rows_dead_letters_and_offsets(
    postgres_url: str, kafka_bootstrap: str, worker_processes: bool, forks: list[int]
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
        worker_processes=worker_processes,
    )
    shared_keys = 40  # distinct recorded_at values of good(7_000 + n), n < 40
    assert result.messages == len(messages)
    assert result.dead_letters == len(bad)
    assert result.lag_left == 0
    assert result.offsets == {p: (0, per_partition[p]) for p in range(PARTITIONS)}
    assert workers_seen(lines, forks, worker_processes)
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


@MODES
def test_message_cap_is_shared_among_parallel_workers(
    postgres_url: str, kafka_bootstrap: str, worker_processes: bool, forks: list[int]
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
        worker_processes=worker_processes,
    )
    assert capped.messages == 7
    assert capped.lag_left == 33
    assert workers_seen(progress, forks, worker_processes)
    rest = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="rest"
    )
    assert rest.messages == 33
    assert topic.table is not None
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(40,)]


@MODES
def test_a_failing_worker_fails_the_run_and_the_next_run_is_exact(
    postgres_url: str,
    kafka_bootstrap: str,
    worker_processes: bool,
    forks: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker of partition 1 fails after its first batch (patched before the fork)."""
    topic = make_topic()
    assert topic.table is not None
    produce(kafka_bootstrap, topic.name, [(i % PARTITIONS, None, good(i)) for i in range(400)])
    real_run = service.BatchPipeline.run

    def failing_run(self: service.BatchPipeline, batches: Any) -> Any:
        if 1 not in self.expected:
            return real_run(self, batches)

        def first_then_fail() -> Any:
            iterator = iter(batches)
            yield next(iterator)
            raise RuntimeError("disk full on partition 1")

        return real_run(self, first_then_fail())

    monkeypatch.setattr(service.BatchPipeline, "run", failing_run)
    with pytest.raises(RuntimeError, match="disk full on partition 1"):
        ingest_table(
            topic,
            warehouse_url=postgres_url,
            kafka_config=kafka(kafka_bootstrap),
            run_id="fails",
            batch_size=10,
            parallelism=2,
            worker_processes=worker_processes,
        )
    assert forks == ([2] if worker_processes else [])
    monkeypatch.setattr(service.BatchPipeline, "run", real_run)
    done = rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}")[0][0]
    assert 10 <= done < 400  # the failing worker's first batch at least; never everything
    rest = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="rest"
    )
    assert rest.messages == 400 - done
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(400,)]


def test_worker_processes_fall_back_to_threads_off_linux(
    postgres_url: str,
    kafka_bootstrap: str,
    forks: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = make_topic()
    assert topic.table is not None
    produce(kafka_bootstrap, topic.name, [(i % PARTITIONS, None, good(i)) for i in range(40)])
    monkeypatch.setattr(processes.sys, "platform", "darwin")
    progress: list[str] = []
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="mac",
        parallelism=2,
        batch_size=5,
        progress=progress.append,
        worker_processes=True,
    )
    assert result.messages == 40
    assert workers_seen(progress, forks, worker_processes=False)
    assert rows_of(postgres_url, f"SELECT count(*) FROM {topic.table.name}") == [(40,)]
