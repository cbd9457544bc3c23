"""Benchmark: one Kafka lag sensor tick over N tables, batched reader vs per-table reads.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_sensor_tick [--tables N]
[--sample S]`` (``PIPELINE_TEST_POSTGRES_URL`` to use a running server; otherwise a private one
is started). The mock broker runs in its own process (4 partitions per topic).

Prints, from the same run:
- one full sensor tick (``evaluate_lag``, batched ``read_lags``, default packing and cap) over
  N tables (default 3,000): each of a few ticks, with the runs it requested (at most the cap;
  the runs of earlier ticks stay in flight, so no table is requested twice), and ``read_lags``
  alone;
- the per-table approach the sensor used before: one warehouse connection + state-table DDL +
  one Consumer + topic metadata + per-partition watermarks per table (``legacy_read_lag``, the
  former ``read_lag``), timed on S tables and extrapolated to N; also the current ``read_lag``
  (a thin wrapper over ``read_lags``) called once per table;
- the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from contextlib import ExitStack

import dagster as dg
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline_platform.factory import naming
from pipeline_platform.factory.sensors import LagSensorOptions, evaluate_lag
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.ingestion.lag import PartitionLag, read_lags
from pipeline_platform.ingestion.reader import consumer_config, group_id_for
from pipeline_platform.ingestion.service import read_lag
from pipeline_platform.ingestion.tables import asset_key_of
from pipeline_platform.registry.document import Topic
from pipeline_platform.resources import KafkaResource, WarehouseResource
from pipeline_platform.warehouse import OFFSETS_TABLE, connect_warehouse, postgres_conninfo
from pipeline_platform_tests.kafka import mock_broker
from pipeline_platform_tests.servers import create_database, private_postgres

PARTITIONS = 4
MESSAGES_PER_TOPIC = 5


def make_topics(count: int) -> list[Topic]:
    """Return ``count`` topics with small tables (names unique to this run)."""
    run = uuid.uuid4().hex[:6]
    return [
        Topic.model_validate(
            {
                "name": f"bench.lag.{run}.{i:05d}",
                "partitions": PARTITIONS,
                "table": {
                    "name": f"lag_{run}_{i:05d}",
                    "upsert_key": ["id"],
                    "mappings": [{"source": "id", "column": "id", "type": "integer"}],
                },
            }
        )
        for i in range(count)
    ]


def fill(bootstrap: str, topics: list[Topic]) -> None:
    """Produce a few messages to every topic with one producer (this creates the topics)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "acks": "all"})
    for topic in topics:
        for i in range(MESSAGES_PER_TOPIC):
            producer.produce(topic.name, value=orjson.dumps({"id": i}), partition=i % PARTITIONS)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("messages not delivered")


def store_offsets(url: str, topics: list[Topic]) -> None:
    """Store next offsets for every other table (half lag partly, half never ingested)."""
    import psycopg

    warehouse = connect_warehouse(url)
    try:
        warehouse.ensure_state_tables()
    finally:
        warehouse.close()
    rows = [
        (asset_key_of(topic.table), topic.name, partition, 1)
        for topic in topics[::2]
        if topic.table is not None
        for partition in range(PARTITIONS)
    ]
    with psycopg.connect(postgres_conninfo(url)) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {OFFSETS_TABLE} (asset_key, topic, partition, next_offset, run_id) "
            "VALUES (%s, %s, %s, %s, 'bench')",
            rows,
        )


def legacy_read_lag(
    topic: Topic, *, warehouse_url: str, kafka_config: dict[str, str], timeout: float = 5.0
) -> dict[int, PartitionLag]:
    """The per-table lag read the sensor used before the batched reader (for comparison)."""
    assert topic.table is not None
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        stored = warehouse.read_offsets(asset_key_of(topic.table), topic.name)
    finally:
        warehouse.close()
    config = consumer_config(kafka_config, group_id_for(topic.table.data_source, topic.table.name))
    config["enable.partition.eof"] = False
    consumer = Consumer(config)
    try:
        # One metadata request, then one ListOffsets round trip per partition (the old way).
        found = consumer.list_topics(topic.name, timeout=timeout).topics[topic.name]
        marks = {
            p: consumer.get_watermark_offsets(
                TopicPartition(topic.name, p), timeout=timeout, cached=False
            )
            for p in sorted(found.partitions)
        }
    finally:
        consumer.close()
    return {
        p: PartitionLag(stored=max(stored.get(p, low), low), end=high)
        for p, (low, high) in marks.items()
    }


def time_tick(
    targets: list[TableTarget], url: str, bootstrap: str, repeat: int
) -> tuple[list[float], list[dg.SensorResult]]:
    """Time ``repeat`` sensor ticks with the default packing and cap.

    After each tick its requested runs are recorded as not yet started (in flight), as the
    daemon would, so later ticks must leave their tables out. Raises when a tick requests more
    runs than the cap or a table appears in two runs.
    """
    options = LagSensorOptions(lag_timeout_seconds=30.0)
    durations: list[float] = []
    results: list[dg.SensorResult] = []
    requested: set[dg.AssetKey] = set()
    with dg.instance_for_test() as instance:
        for _ in range(repeat):
            context = dg.build_sensor_context(instance=instance)
            started = time.perf_counter()
            result = evaluate_lag(
                context,
                targets,
                warehouse=WarehouseResource(url=url),
                kafka=KafkaResource(bootstrap_servers=bootstrap),
                options=options,
            )
            durations.append(time.perf_counter() - started)
            results.append(result)
            requests = result.run_requests or []
            if len(requests) > options.max_runs_per_tick:
                raise AssertionError(
                    f"{len(requests)} runs requested, cap {options.max_runs_per_tick}"
                )
            for request in requests:
                keys = set(request.asset_selection or ())
                if keys & requested:
                    raise AssertionError(f"tables in two in-flight runs: {keys & requested}")
                requested |= keys
                instance.add_run(
                    dg.DagsterRun(
                        job_name=naming.INGESTION_JOB_NAME,
                        run_id=uuid.uuid4().hex,
                        status=dg.DagsterRunStatus.NOT_STARTED,
                        tags=request.tags,
                        asset_selection=frozenset(keys),
                    )
                )
    return durations, results


def main() -> None:
    """Run the benchmark and print the figures and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=3_000)
    parser.add_argument("--sample", type=int, default=100, help="tables read one by one")
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        url = create_database(admin, prefix="bench")
        bootstrap = stack.enter_context(mock_broker())
        kafka_config = {"bootstrap.servers": bootstrap}
        topics = make_topics(args.tables)
        started = time.perf_counter()
        fill(bootstrap, topics)
        store_offsets(url, topics)
        print(
            f"setup: {len(topics)} topics x {PARTITIONS} partitions, "
            f"{MESSAGES_PER_TOPIC} messages each, offsets stored for half "
            f"({time.perf_counter() - started:.1f} s)"
        )
        targets = [
            TableTarget(naming.table_key(t.table.data_source, t.table.name), t, t.table, None)
            for t in topics
            if t.table is not None
        ]

        durations, results = time_tick(targets, url, bootstrap, args.ticks)
        result = results[0]
        requests = len(result.run_requests or [])
        observations = len(result.asset_events or [])
        tick_best, tick_median = min(durations), statistics.median(durations)
        cap = LagSensorOptions().max_runs_per_tick
        for i, (seconds, tick) in enumerate(zip(durations, results, strict=True)):
            runs = tick.run_requests or []
            tables = sum(len(r.asset_selection or ()) for r in runs)
            print(
                f"tick {i + 1}: {seconds * 1000:,.0f} ms, {len(runs)} runs requested (cap {cap}) "
                f"over {tables} tables; earlier runs' tables in flight, none requested twice"
            )
        started = time.perf_counter()
        lags = read_lags(topics, warehouse_urls={"warehouse": url}, kafka_config=kafka_config)
        batched_read = time.perf_counter() - started
        total_lag = sum(p.lag for lag in lags.values() for p in lag.values())
        print(
            f"batched tick ({len(targets)} tables): best {tick_best * 1000:,.0f} ms, "
            f"median {tick_median * 1000:,.0f} ms over {len(durations)} ticks "
            f"({requests} run requests, {observations} observations); "
            f"read_lags alone {batched_read * 1000:,.0f} ms, total lag {total_lag}"
        )

        sample = topics[: max(1, min(args.sample, len(topics)))]
        started = time.perf_counter()
        for topic in sample:
            legacy = legacy_read_lag(topic, warehouse_url=url, kafka_config=kafka_config)
            assert legacy == lags[topic.name], topic.name
        legacy_per_table = (time.perf_counter() - started) / len(sample)
        started = time.perf_counter()
        for topic in sample:
            read_lag(topic, warehouse_url=url, kafka_config=kafka_config)
        wrapper_per_table = (time.perf_counter() - started) / len(sample)
        legacy_total = legacy_per_table * len(targets)
        wrapper_total = wrapper_per_table * len(targets)
        print(
            f"per-table legacy read_lag (connect + DDL + Consumer + per-partition watermarks): "
            f"{legacy_per_table * 1000:,.1f} ms/table on {len(sample)} tables → "
            f"{legacy_total:,.1f} s for {len(targets)} tables (extrapolated)"
        )
        print(
            f"per-table current read_lag (wrapper over read_lags): "
            f"{wrapper_per_table * 1000:,.1f} ms/table → {wrapper_total:,.1f} s for "
            f"{len(targets)} tables (extrapolated)"
        )
        print()
        print(f"legacy per-table / batched tick = {legacy_total / tick_median:,.0f}x")
        print(f"read_lag loop / batched tick = {wrapper_total / tick_median:,.0f}x")
        worst = max(durations)
        print(
            f"worst tick {worst:.2f} s (goal ≤ 2 s); most runs per tick "
            f"{max(len(r.run_requests or []) for r in results)} (cap {cap}); "
            "Dagster sensor timeout: 60 s per tick"
        )


if __name__ == "__main__":
    main()
