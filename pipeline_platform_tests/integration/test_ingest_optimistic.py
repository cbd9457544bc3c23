"""The optimistic COPY of keyed batches (fallback to staging + ON CONFLICT) in PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pipeline_platform.ingestion.decode import DeadLetter
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.ingestion.tables import asset_key_of, table_spec_of
from pipeline_platform.ingestion.writer import write_batch
from pipeline_platform.warehouse import TargetTable, connect_warehouse
from pipeline_platform.warehouse.postgres import PostgresWarehouse
from pipeline_platform_tests.integration.ingest_helpers import (
    PARTITIONS,
    good,
    kafka,
    make_topic,
    rows_of,
)
from pipeline_platform_tests.kafka import produce

STAMP = datetime(2024, 5, 1, tzinfo=UTC)


def row(device: str, rssi: int) -> tuple[Any, ...]:
    return (device, STAMP, rssi, 1.0, True, None, None, "none", "{}")


def test_fallback_on_existing_keys_then_optimism_again(postgres_url: str) -> None:
    topic = make_topic()
    table = topic.table
    assert table is not None
    warehouse = connect_warehouse(postgres_url)
    assert isinstance(warehouse, PostgresWarehouse)
    warehouse.ensure_state_tables()
    target = warehouse.ensure_table(table_spec_of(table))
    state = warehouse.optimism(target)
    offset = 0

    def write(rows: list[tuple[Any, ...]], dead: list[DeadLetter]) -> None:
        nonlocal offset
        write_batch(
            warehouse,
            target,
            rows,
            dead,
            {0: (offset or None, offset + 10)},
            asset_key=asset_key_of(table),
            topic=topic.name,
            run_id=f"run-{offset}",
        )
        offset += 10

    try:
        # 1: new keys (unsorted on purpose): the optimistic COPY succeeds.
        write([row(f"d{i}", -i) for i in (3, 1, 2)], [])
        assert (state.skip, state.backoff) == (0, 0)
        # 2: new and existing keys: the key probe finds d2 and d1, straight to staging, and
        # the probe backs off too (an update-heavy stream stops paying for probes).
        write(
            [row("d2", -20), row("d4", -4), row("d1", -10)],
            [DeadLetter(0, 13, None, b"x", "bad")],
        )
        assert (state.skip, state.backoff) == (1, 1)
        # 2b: new keys while backing off: staging path.
        write([row("d8", -8)], [])
        assert (state.skip, state.backoff) == (0, 1)
        # 3: an existing key the probe does not sample (it samples every
        # len(rows) // PROBE_KEYS-th key from the first; index 1 never):
        # unique violation, rolled back to the savepoint, staging; optimism backs off further.
        many = [row(f"n{i:03d}", -i) for i in range(600)]
        write([many[0], row("d3", -30), *many[1:]], [])
        assert (state.skip, state.backoff) == (2, 2)
        # 4: new keys, still backing off: staging path.
        write([row("d5", -5)], [])
        write([row("d9", -9)], [])
        assert (state.skip, state.backoff) == (0, 2)
        # 5: new keys: optimistic again, succeeds, optimism restored.
        write([row("d7", -7), row("d6", -6)], [])
        assert (state.skip, state.backoff) == (0, 0)
        # 6: an existing key again: updates win.
        write([row("d7", -70)], [])
    finally:
        warehouse.close()
    rows = rows_of(
        postgres_url,
        f"SELECT device_id, signal_dbm FROM {table.name} WHERE device_id LIKE 'd%' ORDER BY 1",
    )
    assert rows_of(postgres_url, f"SELECT count(*) FROM {table.name}") == [(609,)]
    many_rows = rows_of(
        postgres_url, f"SELECT device_id, signal_dbm FROM {table.name} WHERE device_id LIKE 'n%'"
    )
    assert sorted(many_rows) == [(f"n{i:03d}", -i) for i in range(600)]
    assert rows == [
        ("d1", -10),
        ("d2", -20),
        ("d3", -30),
        ("d4", -4),
        ("d5", -5),
        ("d6", -6),
        ("d7", -70),
        ("d8", -8),
        ("d9", -9),
    ]
    dead = rows_of(postgres_url, 'SELECT partition, "offset", reason, run_id FROM pp_dead_letters')
    assert (0, 13, "bad", "run-10") in dead
    offsets = rows_of(
        postgres_url,
        f"SELECT partition, next_offset FROM pp_ingestion_offsets WHERE topic = '{topic.name}'",
    )
    assert offsets == [(0, 80)]


def test_concurrent_writers_with_the_same_keys_in_opposite_order(postgres_url: str) -> None:
    topic = make_topic()
    table = topic.table
    assert table is not None
    setup = connect_warehouse(postgres_url)
    setup.ensure_state_tables()
    target: TargetTable = setup.ensure_table(table_spec_of(table))
    setup.close()
    keys = [f"k{i:04d}" for i in range(2000)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(partition: int) -> None:
        warehouse = connect_warehouse(postgres_url)
        try:
            barrier.wait()
            for rnd in range(3):
                ordered = keys if partition == 0 else keys[::-1]
                write_batch(
                    warehouse,
                    target,
                    [row(k, -rnd) for k in ordered],
                    [],
                    {partition: (rnd * 10 or None, rnd * 10 + 10)},
                    asset_key=asset_key_of(table),
                    topic=topic.name,
                    run_id=f"w{partition}",
                )
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            warehouse.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rows_of(postgres_url, f"SELECT count(*) FROM {table.name}") == [(len(keys),)]


def test_parallel_ingest_with_the_same_keys_on_every_partition(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    topic = make_topic()
    table = topic.table
    assert table is not None
    messages: list[tuple[int | None, bytes | None, bytes | None]] = [
        (p, None, good(n, device=f"shared-{n % 50}", rssi=-rnd))
        for rnd in range(4)
        for n in range(300)
        for p in range(PARTITIONS)
    ]
    produce(kafka_bootstrap, topic.name, messages)
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config=kafka(kafka_bootstrap),
        run_id="opt-par",
        batch_size=200,
        parallelism=2,
    )
    assert result.messages == len(messages)
    assert result.lag_left == 0
    per_partition = len(messages) // PARTITIONS
    assert result.offsets == {p: (0, per_partition) for p in range(PARTITIONS)}
    # 300 distinct (device, recorded_at) keys; every partition's last round has rssi -3.
    assert rows_of(
        postgres_url, f"SELECT count(*), min(signal_dbm), max(signal_dbm) FROM {table.name}"
    ) == [(300, -3, -3)]
