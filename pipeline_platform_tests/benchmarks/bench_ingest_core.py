"""Benchmark: the ingestion hot path (decode → validate → map → COPY → upsert) into PostgreSQL.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_ingest_core [--messages N]``
(``PIPELINE_TEST_POSTGRES_URL`` to use a running server; otherwise a private one is started).

Prints, from the same run:
- the pipeline's rate on N prefetched Wi-Fi-scan messages (nested fields, ~5 % repeated keys,
  a JSON Schema, upsert by key, offsets and dead letters in each transaction);
- baseline A: a plain binary COPY → TEMP staging → one INSERT ... ON CONFLICT of the same
  already-mapped rows (same batch size), and the ratio pipeline / A (goal ≥ 0.6);
- baseline B: one INSERT ... ON CONFLICT + commit per message (5k messages, extrapolated);
- peak RSS (goal ≤ 500 MB).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from collections.abc import Iterator
from contextlib import ExitStack

import orjson
import psycopg

from pipeline_platform.ingestion.decode import (
    DecodeOptions,
    RawMessage,
    compile_validator,
    transform_batch,
)
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.ingestion.service import BatchPipeline
from pipeline_platform.ingestion.tables import asset_key_of, table_spec_of
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform.warehouse.postgres import PostgresWarehouse
from pipeline_platform.warehouse.postgres_write import copy_rows, upsert_sql
from pipeline_platform_tests.servers import create_database, private_postgres

PARTITIONS = 4


def wifi_topic(table: str = "wifi_scans") -> Topic:
    """The benchmark topic: Wi-Fi scans with nested fields."""
    return Topic.model_validate(
        {
            "name": "device.network.wifi.bench",
            "partitions": PARTITIONS,
            "schema": {
                "type": "object",
                "required": ["device_id", "recorded_at", "scan"],
                "properties": {
                    "device_id": {"type": "string"},
                    "scan": {"type": "object"},
                },
            },
            "table": {
                "name": table,
                "upsert_key": ["device_id", "recorded_at"],
                "time_column": "recorded_at",
                "mappings": [
                    {
                        "source": "device_id",
                        "column": "device_id",
                        "type": "string",
                        "required": True,
                    },
                    {
                        "source": "recorded_at",
                        "column": "recorded_at",
                        "type": "timestamp",
                        "required": True,
                    },
                    {"source": "scan.ssid", "column": "ssid", "type": "string"},
                    {"source": "scan.bssid", "column": "bssid", "type": "string"},
                    {"source": "scan.rssi", "column": "signal_dbm", "type": "integer"},
                    {"source": "scan.frequency", "column": "frequency_mhz", "type": "integer"},
                    {
                        "source": "scan.tags[0]",
                        "column": "first_tag",
                        "type": "string",
                        "default": "none",
                    },
                    {"source": "location.lat", "column": "lat", "type": "float"},
                    {"source": "location.lon", "column": "lon", "type": "float"},
                ],
            },
        }
    )


def encode(value: object) -> bytes:
    """JSON bytes with a compact allocation (like message values read from Kafka)."""
    return bytes(bytearray(orjson.dumps(value)))


def generate(count: int, seed: int = 7) -> list[bytes]:
    """Generate ``count`` Wi-Fi scan messages (about 5 % repeat an earlier key)."""
    rng = random.Random(seed)
    base = 1_714_000_000
    values = []
    stamps: dict[int, str] = {}
    for i in range(count):
        n = rng.randrange(i) if i and rng.random() < 0.05 else i
        second = base + n // 1000
        stamp = stamps.get(second)
        if stamp is None:
            stamp = stamps[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # bytes(bytearray(...)): orjson's result keeps a ~4 KB allocation; Kafka's bytes do not.
        values.append(
            encode(
                {
                    "device_id": f"dev-{n % 1000:04d}",
                    "recorded_at": f"{stamp}.{n % 1000:03d}Z",
                    "scan": {
                        "ssid": f"net-{rng.randrange(500)}",
                        "bssid": f"aa:bb:cc:{n % 256:02x}:{(n >> 8) % 256:02x}:01",
                        "rssi": -rng.randrange(30, 95),
                        "frequency": rng.choice((2412, 2437, 2462, 5180, 5240)),
                        "tags": ["home", "5g"] if n % 3 else [],
                    },
                    "location": {"lat": 52.0 + rng.random(), "lon": 13.0 + rng.random()},
                }
            )
        )
    return values


def batches(
    values: list[bytes], batch_size: int
) -> Iterator[tuple[list[RawMessage], dict[int, int]]]:
    """Yield in-memory batches as the reader would (round-robin partitions)."""
    for start in range(0, len(values), batch_size):
        chunk = values[start : start + batch_size]
        messages = [
            ((start + i) % PARTITIONS, (start + i) // PARTITIONS, None, value)
            for i, value in enumerate(chunk)
        ]
        positions: dict[int, int] = {}
        for partition, offset, _key, _value in messages[-PARTITIONS:]:
            positions[partition] = offset + 1
        yield messages, positions


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Run the benchmark and print figures and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        url = create_database(admin, prefix="bench")
        topic = wifi_topic()
        assert topic.table is not None
        table = topic.table
        t0 = time.perf_counter()
        values = generate(args.messages)
        total_bytes = sum(len(v) for v in values)
        print(
            f"generated {len(values):,} messages ({total_bytes / len(values):.0f} B avg) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        mapping = compile_mapping(table)
        validator = compile_validator(topic.json_schema)
        options = DecodeOptions()

        # Pipeline under test.
        warehouse = PostgresWarehouse(postgres_conninfo(url))
        warehouse.ensure_state_tables()
        target = warehouse.ensure_table(table_spec_of(table))
        pipeline = BatchPipeline(
            warehouse,
            target,
            mapping,
            validator,
            options,
            asset_key=asset_key_of(table),
            topic=topic.name,
            run_id="bench",
            expected=dict.fromkeys(range(PARTITIONS)),
        )
        t0 = time.perf_counter()
        totals = pipeline.run(batches(values, args.batch_size))
        pipeline_seconds = time.perf_counter() - t0
        rate = totals.messages / pipeline_seconds
        rows = warehouse.conn.execute(f"SELECT count(*) FROM {target.qualified}").fetchone()
        print(
            f"pipeline: {totals.messages:,} messages → {rows[0] if rows else 0:,} rows, "
            f"{totals.dead} dead letters in {pipeline_seconds:.2f} s = {rate:,.0f} msg/s"
        )

        # Stage timings of the Python side on one batch (for profiling).
        sample = next(batches(values, args.batch_size))[0]
        t0 = time.perf_counter()
        prepared = transform_batch(sample, mapping, validator, options)
        transform_rate = len(sample) / (time.perf_counter() - t0)
        print(f"  transform alone (decode+validate+map+dedupe): {transform_rate:,.0f} msg/s")

        # Baseline A: plain COPY → staging → ON CONFLICT of already-mapped rows, over the same
        # messages into a fresh table of the same shape (mapping is done per chunk, untimed, to
        # keep memory flat; only the database work is timed).
        base_table = wifi_topic("wifi_scans_baseline").table
        assert base_table is not None
        base_target = warehouse.ensure_table(table_spec_of(base_table))
        staging = warehouse.staging_table(base_target)
        sql = upsert_sql(base_target, staging)
        base_seconds = 0.0
        count = 0
        for chunk, _positions in batches(values, args.batch_size):
            chunk_rows = transform_batch(chunk, mapping, validator, options).rows
            t0 = time.perf_counter()
            with warehouse.conn.transaction():
                copy_rows(warehouse.conn, staging, base_target, chunk_rows)
                warehouse.conn.execute(sql)
            base_seconds += time.perf_counter() - t0
            count += len(chunk_rows)
        base_rate = len(values) / base_seconds
        print(
            f"baseline A (COPY→staging→ON CONFLICT of mapped rows): {len(values):,} "
            f"messages ({count:,} rows) in {base_seconds:.2f} s = {base_rate:,.0f} msg/s"
        )
        baseline_values = values[:5000]
        del values

        # Baseline B: one INSERT ... ON CONFLICT + commit per message.
        per_message = baseline_values
        cols = ", ".join(f'"{c}"' for c in base_target.columns)
        marks = ", ".join("%s" for _ in base_target.columns)
        rest = [c for c in base_target.columns if c not in base_target.conflict_columns]
        single = (
            f"INSERT INTO {base_target.qualified} ({cols}) VALUES ({marks}) ON CONFLICT "
            f"(device_id, recorded_at) DO UPDATE SET "
            + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in rest)
        )
        with psycopg.connect(postgres_conninfo(url)) as conn:
            t0 = time.perf_counter()
            for value in per_message:
                row = mapping.build(orjson.loads(value))
                assert isinstance(row, tuple)
                conn.execute(single, row)
                conn.commit()
            single_rate = len(per_message) / (time.perf_counter() - t0)
        print(f"baseline B (INSERT + commit per message, 5k): {single_rate:,.0f} msg/s")
        warehouse.close()
        del prepared
        print()
        print(f"pipeline / baseline A = {rate / base_rate:.2f}  (goal ≥ 0.60)")
        print(f"pipeline / baseline B = {rate / single_rate:.1f}x")
        print(f"pipeline rate {rate:,.0f} msg/s  (goal ≥ 100,000)")
        print(f"peak RSS {peak_rss_mb():.0f} MB  (goal ≤ 500)")


if __name__ == "__main__":
    main()
