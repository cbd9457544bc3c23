"""Benchmark: ``ingest_table`` end to end through a Kafka-protocol broker over TCP into PostgreSQL.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_ingest_e2e [--per-partition N]``

Starts the mock broker in its own process (mind its ~5 MB per partition retention: the default
4 x 35k messages of ~110 B stays under it) and a private PostgreSQL (or
``PIPELINE_TEST_POSTGRES_URL``). In the same run it measures:
- ``ingest_table`` (decode, schema, map, offsets, Kafka commits) into an append-only table
  and, separately, into a table with an upsert key (COPY → staging → ON CONFLICT), each with
  ``parallelism=1`` (sequential, for comparison), 2 thread workers (the default) and 2 forked
  worker processes (``worker_processes=True``, what a Dagster run uses);
- a plain consumer reading the same messages (``assign`` + ``consume(10000)``);
- a plain binary COPY of the already-mapped rows into an empty table;
and prints the ingest rate as a ratio of the slower baseline (goal ≥ 0.3).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack

from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.ingestion.decode import DecodeOptions, compile_validator, transform_batch
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.ingestion.tables import table_spec_of
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform.warehouse.postgres import PostgresWarehouse
from pipeline_platform.warehouse.postgres_write import copy_rows
from pipeline_platform_tests.benchmarks.bench_ingest_core import encode, peak_rss_mb, wifi_topic
from pipeline_platform_tests.kafka import mock_broker, produce
from pipeline_platform_tests.servers import create_database, private_postgres

PARTITIONS = 4


def small_message(n: int) -> bytes:
    """A small Wi-Fi scan (~110 B) with nested fields."""
    return encode(
        {
            "device_id": f"d{n % 5000}",
            "recorded_at": 1_714_000_000_000 + n,
            "scan": {"ssid": f"n{n % 300}", "rssi": -(n % 60) - 30, "tags": ["h"]},
            "location": {"lat": 52.5, "lon": 13.4},
        }
    )


def plain_consume(bootstrap: str, topics: Sequence[str], expected: int) -> float:
    """Seconds for a bare consumer to read ``expected`` messages of ``topics`` from offset 0."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-plain",
            "enable.auto.commit": False,
            "queued.max.messages.kbytes": 262_144,
            "fetch.wait.max.ms": 100,
            # librdkafka's default (1,000 ms) stalls the fetcher for a second whenever its queue
            # is over the thresholds: measured 1.09 s instead of 0.16 s for 200,000 messages.
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
    t0 = time.perf_counter()
    count = 0
    while count < expected:
        for message in consumer.consume(num_messages=10_000, timeout=1.0):
            if message.error() is None:
                message.value()
                count += 1
    seconds = time.perf_counter() - t0
    consumer.close()
    return seconds


def main() -> None:
    """Run the benchmark and print figures and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-partition", type=int, default=35_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args()
    total = args.per_partition * PARTITIONS
    with ExitStack() as stack:
        bootstrap = stack.enter_context(mock_broker())
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        url = create_database(admin, prefix="bench")
        topic = wifi_topic("wifi_e2e").model_copy(update={"name": "bench.e2e.wifi"})
        assert topic.table is not None
        values = [small_message(n) for n in range(total)]
        t0 = time.perf_counter()
        produce(bootstrap, topic.name, [(n % PARTITIONS, None, v) for n, v in enumerate(values)])
        produce_seconds = time.perf_counter() - t0
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
        marks = [
            probe.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)
            for p in range(PARTITIONS)
        ]
        probe.close()
        if any(low != 0 for low, _high in marks):
            raise SystemExit(f"retention deleted messages ({marks}): lower --per-partition")
        print(
            f"produced {total:,} messages ({sum(map(len, values)) / total:.0f} B avg) in "
            f"{produce_seconds:.2f} s; watermarks {marks}"
        )

        results = {}
        for label, key in (("append", ()), ("upsert", ("device_id", "recorded_at"))):
            # Sequential (parallelism 1), 2 thread workers, 2 worker processes (as a run does).
            for workers, forked, name in (
                (1, False, f"{label} sequential"),
                (2, False, f"{label} threads"),
                (2, True, f"{label} processes"),
            ):
                table = topic.table.model_copy(
                    update={"name": f"wifi_e2e_{label}_p{workers}{forked:d}", "upsert_key": key}
                )
                result = ingest_table(
                    topic.model_copy(update={"table": table}),
                    warehouse_url=url,
                    kafka_config={"bootstrap.servers": bootstrap},
                    run_id="bench",
                    batch_size=args.batch_size,
                    parallelism=workers,
                    worker_processes=forked,
                )
                assert result.messages == total, result
                results[name] = result
                print(
                    f"ingest_table ({name}): {result.messages:,} messages, "
                    f"{result.rows_written:,} rows, {result.dead_letters} dead letters in "
                    f"{result.seconds:.2f} s = {result.messages_per_second:,.0f} msg/s"
                )

        consume_seconds = plain_consume(bootstrap, [topic.name], total)
        consume_rate = total / consume_seconds
        print(f"baseline plain consumer (assign + consume(10000)): {consume_rate:,.0f} msg/s")

        mapping = compile_mapping(topic.table)
        validator = compile_validator(topic.json_schema)
        mapped = []
        for start in range(0, total, args.batch_size):
            chunk = [(0, i, None, v) for i, v in enumerate(values[start : start + args.batch_size])]
            mapped.append(transform_batch(chunk, mapping, validator, DecodeOptions()).rows)
        copy_table = wifi_topic("wifi_e2e_copy").table
        assert copy_table is not None
        warehouse = PostgresWarehouse(postgres_conninfo(url))
        target = warehouse.ensure_table(table_spec_of(copy_table))
        t0 = time.perf_counter()
        rows = 0
        for chunk_rows in mapped:
            with warehouse.conn.transaction():
                copy_rows(warehouse.conn, target.qualified, target, chunk_rows)
            rows += len(chunk_rows)
        copy_seconds = time.perf_counter() - t0
        warehouse.close()
        copy_rate = total / copy_seconds
        print(f"baseline plain COPY of the mapped rows ({rows:,} rows): {copy_rate:,.0f} msg/s")
        slower = min(consume_rate, copy_rate)
        print()
        for label, result in results.items():
            rate = result.messages_per_second
            print(
                f"{label}: ingest / slower baseline = {rate / slower:.2f} (goal ≥ 0.3); "
                f"/ plain consumer = {rate / consume_rate:.2f}; "
                f"/ plain COPY = {rate / copy_rate:.2f}"
            )
        print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
