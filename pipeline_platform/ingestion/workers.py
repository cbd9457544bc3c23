"""Partition workers: disjoint groups of partitions, each with its own consumer and connection."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from confluent_kafka import Consumer

from pipeline_platform.ingestion.pipeline import BatchTotals
from pipeline_platform.ingestion.reader import PartitionRange, close_consumer
from pipeline_platform.warehouse import Warehouse


def effective_parallelism(parallelism: int, warehouse: Warehouse, max_messages: int | None) -> int:
    """Return the worker count: 1 for a single-writer backend, at most one per capped message."""
    if not warehouse.parallel_writers:
        return 1
    workers = max(1, parallelism)
    return workers if max_messages is None else max(1, min(workers, max_messages))


def split_cap(
    max_messages: int | None, groups: list[dict[int, PartitionRange]]
) -> dict[int, int | None]:
    """Share a run's message cap among the groups, keyed by each group's first partition.

    The shares add up to the cap, so a capped run never reads more than asked; a group with
    less to read than its share leaves the difference as lag for the next run.
    """
    if max_messages is None:
        return {min(group, default=-1): None for group in groups}
    share, extra = divmod(max_messages, len(groups))
    return {
        min(group, default=-1): share + (1 if index < extra else 0)
        for index, group in enumerate(groups)
    }


def partition_groups(
    ranges: Mapping[int, PartitionRange], workers: int
) -> list[dict[int, PartitionRange]]:
    """Split the partitions with work round robin into at most ``workers`` groups.

    With one group (or nothing to read) the single group holds every range, as before.
    """
    busy = sorted(p for p, r in ranges.items() if r.start < r.end)
    count = min(workers, len(busy))
    if count <= 1:
        return [dict(ranges)]
    groups: list[dict[int, PartitionRange]] = [{} for _ in range(count)]
    for index, partition in enumerate(busy):
        groups[index % count][partition] = ranges[partition]
    return groups


def labelled(
    progress: Callable[[str], None] | None,
    index: int,
    count: int,
    lock: threading.Lock | None = None,
) -> Callable[[str], None] | None:
    """Return ``progress`` prefixing ``[worker i/n]`` (under ``lock`` when workers share it)."""
    if progress is None:
        return None
    say = progress

    def label(message: str) -> None:
        with lock if lock is not None else contextlib.nullcontext():
            say(f"[worker {index + 1}/{count}] {message}")

    return label


GroupRunner = Callable[
    [
        dict[int, PartitionRange],
        Warehouse,
        Consumer,
        threading.Event | None,
        Callable[[str], None] | None,
    ],
    tuple[BatchTotals, dict[int, int | None]],
]


def run_groups(
    groups: list[dict[int, PartitionRange]],
    run_group: GroupRunner,
    expected: dict[int, int | None],
    *,
    main: tuple[Warehouse, Consumer],
    connect: Callable[[], tuple[Warehouse, Consumer]],
    progress: Callable[[str], None] | None,
) -> BatchTotals:
    """Run each group in its own thread; the first uses ``main``, the others connect their own.

    A failing worker stops the others (they finish their in-flight batch, then stop reading);
    the first error is raised after every worker ended. On success, the offsets each worker
    moved are merged into ``expected`` and the totals summed.
    """
    stop = threading.Event()
    lock = threading.Lock()

    def worker_progress(index: int) -> Callable[[str], None] | None:
        return labelled(progress, index, len(groups), lock)

    def work(index: int) -> tuple[BatchTotals, dict[int, int | None]]:
        if index == 0:
            try:
                return run_group(groups[0], *main, stop, worker_progress(0))
            except BaseException:
                stop.set()
                raise
        try:
            worker_warehouse, worker_consumer = connect()
        except BaseException:
            stop.set()
            raise
        try:
            return run_group(
                groups[index], worker_warehouse, worker_consumer, stop, worker_progress(index)
            )
        except BaseException:
            stop.set()
            raise
        finally:
            try:
                close_consumer(worker_consumer)
            finally:
                worker_warehouse.close()

    totals = BatchTotals()
    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="pp-ingest") as pool:
        futures = [pool.submit(work, index) for index in range(len(groups))]
        wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            stop.set()
        wait(futures)
    error: BaseException | None = None
    for future in futures:
        failure = future.exception()
        if failure is not None:
            error = error or failure
            continue
        group_totals, moved = future.result()
        totals.merge(group_totals)
        expected.update(moved)
    if error is not None:
        raise error
    return totals


def run_groups_forked(
    groups: list[dict[int, PartitionRange]],
    run_group: GroupRunner,
    expected: dict[int, int | None],
    *,
    connect: Callable[[], tuple[Warehouse, Consumer]],
    progress: Callable[[str], None] | None,
) -> BatchTotals:
    """Run each group in its own forked worker process, each with its own connections.

    ``progress`` is called in the workers (a callback that writes to this process's log or
    event stream must not be passed: stdout is fine).

    The first failure ends the other workers at once (their open batches roll back; what they
    committed stays, the offsets with it) and is raised. On success, the offsets each worker
    moved are merged into ``expected`` and the totals summed.
    """
    from pipeline_platform.ingestion.processes import forked_map

    def work(
        numbered: tuple[int, dict[int, PartitionRange]],
    ) -> tuple[BatchTotals, dict[int, int | None]]:
        index, group = numbered
        warehouse, consumer = connect()
        try:
            say = labelled(progress, index, len(groups))
            return run_group(group, warehouse, consumer, None, say)
        finally:
            try:
                close_consumer(consumer)
            finally:
                warehouse.close()

    totals = BatchTotals()
    outcomes = forked_map(work, list(enumerate(groups)), len(groups))
    try:
        for _group, outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
            group_totals, moved = outcome
            totals.merge(group_totals)
            expected.update(moved)
    finally:
        outcomes.close()  # after a failure: terminates the workers still running
    return totals
