"""Two ingestion writers on the same offset range: only one commits, a stale one is fenced."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pipeline_platform.ingestion.decode import DeadLetter
from pipeline_platform.ingestion.tables import asset_key_of, table_spec_of
from pipeline_platform.ingestion.writer import write_batch
from pipeline_platform.warehouse import FencedError, connect_warehouse
from pipeline_platform_tests.integration.ingest_helpers import make_topic, rows_of


def test_two_writers_on_the_same_range_only_one_commits(postgres_url: str) -> None:
    topic = make_topic()
    table = topic.table
    assert table is not None
    key = asset_key_of(table)
    setup = connect_warehouse(postgres_url)
    setup.ensure_state_tables()
    target = setup.ensure_table(table_spec_of(table))
    setup.close()
    from datetime import UTC, datetime

    def row(device: str) -> tuple[Any, ...]:
        stamp = datetime(2024, 5, 1, tzinfo=UTC)
        return (device, stamp, 1, 1.0, True, None, None, "none", "{}")

    def race(expected: int | None) -> tuple[list[str], list[str]]:
        winners: list[str] = []
        errors: list[str] = []
        barrier = threading.Barrier(2)

        def write(name: str) -> None:
            warehouse = connect_warehouse(postgres_url)
            try:
                barrier.wait()
                write_batch(
                    warehouse,
                    target,
                    [row(f"{name}-{expected}")],
                    [DeadLetter(0, 5, None, b"x", f"bad {name}")],
                    {0: (expected, (expected or 0) + 10)},
                    asset_key=key,
                    topic=topic.name,
                    run_id=name,
                )
                winners.append(name)
            except FencedError as error:
                errors.append(str(error))
            finally:
                warehouse.close()

        threads = [threading.Thread(target=write, args=(n,)) for n in ("A", "B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return winners, errors

    # Concurrent: both expect the same stored offset (first none, then 10); one commits.
    for expected in (None, 10):
        winners, errors = race(expected)
        assert len(winners) == 1, (winners, errors)
        assert len(errors) == 1 and "fenced" in errors[0]
    rows = rows_of(postgres_url, f"SELECT device_id FROM {table.name}")
    assert len(rows) == 2
    offsets = rows_of(postgres_url, "SELECT partition, next_offset FROM pp_ingestion_offsets")
    assert offsets == [(0, 20)]
    # A late writer with a stale expectation writes nothing.
    warehouse = connect_warehouse(postgres_url)
    with pytest.raises(FencedError):
        write_batch(
            warehouse,
            target,
            [row("late")],
            [],
            {0: (10, 20)},
            asset_key=key,
            topic=topic.name,
            run_id="late",
        )
    warehouse.close()
    assert len(rows_of(postgres_url, f"SELECT device_id FROM {table.name}")) == 2
