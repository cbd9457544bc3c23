"""The ingestion service: the one entry point for the Dagster asset body, the sensor and the CLI.

``ingest_table`` reads a topic from the stored offsets to the end offsets captured at start and
writes every batch (rows, dead letters, next offsets) in one transaction; decoding and mapping
of batch N+1 overlaps the database write of batch N (one writer thread, batches committed in
order). Consumer-group offsets are committed to Kafka after each database commit, so standard
lag tools work; the database stays the source of truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline_platform.ingestion.decode import (
    DecodeOptions,
    PreparedBatch,
    RawMessage,
    Validator,
    compile_validator,
    transform_batch,
)
from pipeline_platform.ingestion.lag import PartitionLag, read_lags
from pipeline_platform.ingestion.mapping import CompiledMapping, compile_mapping
from pipeline_platform.ingestion.reader import (
    BrokerUnavailable,
    PartitionRange,
    consumer_config,
    group_id_for,
    plan_ranges,
    read_batches,
    watermarks,
)
from pipeline_platform.ingestion.warehouse import (
    DEAD_LETTERS_TABLE,
    PostgresWarehouse,
    SqliteWarehouse,
    TargetTable,
    Warehouse,
    asset_key_of,
    connect_warehouse,
)
from pipeline_platform.ingestion.writer import OffsetUpdates, write_batch, write_replay
from pipeline_platform.registry.document import TableConfig, Topic

logger = logging.getLogger(__name__)

__all__ = [
    "BrokerUnavailable",
    "DeadLetterRecord",
    "IngestionResult",
    "PartitionLag",
    "ReplayResult",
    "ingest_table",
    "list_dead_letters",
    "read_lag",
    "read_lags",
    "replay_dead_letters",
]


@dataclass(frozen=True)
class IngestionResult:
    """What one ingestion run did.

    Attributes:
        rows_written: Rows written (after deduplication by upsert key within batches).
        dead_letters: Messages dead-lettered.
        messages: Messages read.
        seconds: Wall time of the run.
        messages_per_second: ``messages / seconds``.
        lag_left: Messages still unread at the end (new arrivals or ``max_messages``).
        offsets: Per partition, ``(start, end)``: the next offset before and after the run.
        gaps: Messages lost to retention before they could be read.
    """

    rows_written: int
    dead_letters: int
    messages: int
    seconds: float
    messages_per_second: float
    lag_left: int
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    gaps: int = 0


@dataclass(frozen=True)
class DeadLetterRecord:
    """A stored dead letter."""

    id: int
    asset_key: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    reason: str
    run_id: str | None
    created_at: datetime | str | None


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying dead letters."""

    replayed: int
    rows_written: int
    still_failing: int


def _table_of(topic: Topic) -> TableConfig:
    if topic.table is None:
        raise ValueError(f"topic {topic.name} has no table configured: nothing to ingest")
    return topic.table


def ingest_table(
    topic: Topic,
    *,
    warehouse_url: str,
    kafka_config: dict[str, str],
    run_id: str,
    max_messages: int | None = None,
    batch_size: int = 50_000,
    progress: Callable[[str], None] | None = None,
    decode_options: DecodeOptions | None = None,
    broker_timeout: float = 15.0,
    idle_timeout: float = 30.0,
    parallelism: int = 2,
) -> IngestionResult:
    """Ingest a topic into its table, exactly once, up to the end offsets captured at start.

    Args:
        topic: The topic (with its table configuration).
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        kafka_config: librdkafka settings (bootstrap servers, security).
        run_id: Id of the run, stored with offsets and dead letters.
        max_messages: Stop after this many messages (the rest stays as lag).
        batch_size: Messages per database transaction.
        progress: Called with a one-line progress message after each batch.
        decode_options: Size limit and key rule; defaults when omitted.
        broker_timeout: Seconds to wait for broker metadata and watermarks.
        idle_timeout: Seconds without messages before the read gives up.
        parallelism: Workers reading disjoint groups of partitions (round robin), each with
            its own consumer and database connection; every transaction holds only its own
            partitions' rows, dead letters and offsets. 1 when the warehouse is SQLite (one
            writer); ``max_messages`` is shared among the workers.

    Returns:
        The counts, rate, lag left and offset range per partition.

    Raises:
        FencedError: Another run committed the same range first (this run's batch rolled back).
        BrokerUnavailable: The brokers did not answer.
        ReadTimeout: The broker stopped delivering pending messages.
    """
    table = _table_of(topic)
    started = time.perf_counter()
    options = decode_options or DecodeOptions()
    asset_key = asset_key_of(table)
    say = progress or (lambda _message: None)
    totals = BatchTotals()
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        target = warehouse.ensure_table(table)
        mapping = compile_mapping(table)
        validator = compile_validator(topic.json_schema)
        stored = warehouse.read_offsets(asset_key, topic.name)
        consumer = Consumer(
            consumer_config(kafka_config, group_id_for(table.data_source, table.name))
        )
        try:
            ranges = plan_ranges(consumer, topic.name, stored, broker_timeout)
            expected: dict[int, int | None] = {p: r.stored for p, r in ranges.items()}
            say(
                f"{topic.name} → {asset_key}: "
                f"{sum(max(0, r.end - r.start) for r in ranges.values())} messages to read "
                f"from {len(ranges)} partitions"
            )
            groups = _partition_groups(
                ranges, _effective_parallelism(parallelism, warehouse, max_messages)
            )
            caps = _split_cap(max_messages, groups)

            def run_group(
                group: dict[int, PartitionRange],
                worker_warehouse: Warehouse,
                worker_consumer: Consumer,
                stop: threading.Event | None,
                worker_progress: Callable[[str], None] | None,
            ) -> tuple[BatchTotals, dict[int, int | None]]:
                group_expected = {p: expected[p] for p in group}
                pipeline = BatchPipeline(
                    worker_warehouse,
                    target,
                    mapping,
                    validator,
                    options,
                    asset_key=asset_key,
                    topic=topic.name,
                    run_id=run_id,
                    expected=group_expected,
                    on_commit=lambda updates: _commit_to_kafka(
                        worker_consumer, topic.name, updates
                    ),
                    progress=worker_progress,
                )
                group_totals = pipeline.run(
                    read_batches(
                        worker_consumer,
                        topic.name,
                        group,
                        batch_size=batch_size,
                        max_messages=caps[min(group, default=-1)],
                        idle_timeout=idle_timeout,
                        stop=stop,
                    )
                )
                return group_totals, group_expected

            if len(groups) <= 1:
                totals, moved = run_group(ranges, warehouse, consumer, None, progress)
                expected.update(moved)
            else:
                totals = _run_groups(
                    groups,
                    run_group,
                    expected,
                    main=(warehouse, consumer),
                    connect=lambda: (
                        connect_warehouse(warehouse_url),
                        Consumer(
                            consumer_config(
                                kafka_config, group_id_for(table.data_source, table.name)
                            )
                        ),
                    ),
                    progress=progress,
                )
            jumps = _retention_jumps(ranges, expected)
            if jumps:
                write_batch(
                    warehouse,
                    target,
                    [],
                    [],
                    jumps,
                    asset_key=asset_key,
                    topic=topic.name,
                    run_id=run_id,
                )
                _commit_to_kafka(consumer, topic.name, jumps)
            lag_left = _lag_left(consumer, topic.name, ranges, expected, broker_timeout)
        finally:
            consumer.close()
    finally:
        warehouse.close()
    seconds = time.perf_counter() - started
    offsets = {
        p: (r.start if r.stored is None else r.stored, _position(r, expected[p]))
        for p, r in ranges.items()
    }
    result = IngestionResult(
        rows_written=totals.rows,
        dead_letters=totals.dead,
        messages=totals.messages,
        seconds=seconds,
        messages_per_second=totals.messages / seconds if seconds > 0 else 0.0,
        lag_left=lag_left,
        offsets=offsets,
        gaps=sum(r.gap for r in ranges.values()),
    )
    logger.info(
        "ingested %s into %s: %d messages, %d rows, %d dead letters in %.2f s",
        topic.name,
        asset_key,
        result.messages,
        result.rows_written,
        result.dead_letters,
        seconds,
    )
    return result


@dataclass
class BatchTotals:
    """Counts over the batches of one run."""

    messages: int = 0
    rows: int = 0
    dead: int = 0

    def add(self, prepared: PreparedBatch) -> None:
        """Count one committed batch."""
        self.messages += prepared.messages
        self.rows += len(prepared.rows)
        self.dead += len(prepared.dead_letters)


class BatchPipeline:
    """Transform batch N+1 while batch N is written (one writer thread, commits in order).

    The database connection is used only by the writer thread while a write is in flight.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        target: TargetTable,
        mapping: CompiledMapping,
        validator: Validator | None,
        options: DecodeOptions,
        *,
        asset_key: str,
        topic: str,
        run_id: str,
        expected: dict[int, int | None],
        on_commit: Callable[[OffsetUpdates], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Set up the pipeline.

        Args:
            warehouse: The connected warehouse.
            target: The ensured target table.
            mapping: The compiled mapping.
            validator: Compiled JSON Schema validator, or None.
            options: Size and key rules.
            asset_key: ``<data_source>/<table>``.
            topic: Topic name.
            run_id: The run id.
            expected: Stored next offset per partition (None: no row); updated as batches go.
            on_commit: Called with each batch's offset updates after its database commit.
            progress: Called with a one-line progress message after each commit.
        """
        self.warehouse = warehouse
        self.target = target
        self.mapping = mapping
        self.validator = validator
        self.options = options
        self.asset_key = asset_key
        self.topic = topic
        self.run_id = run_id
        self.expected = expected
        self.on_commit = on_commit
        self.progress = progress

    def run(self, batches: Iterable[tuple[list[RawMessage], dict[int, int]]]) -> BatchTotals:
        """Transform and write every batch.

        Args:
            batches: ``(messages, positions)`` pairs as yielded by the reader.

        Returns:
            The totals over committed batches.

        Raises:
            FencedError: Another run committed a range first.
        """
        totals = BatchTotals()
        started = time.perf_counter()
        inflight: tuple[Future[None], OffsetUpdates, PreparedBatch] | None = None

        def flush(job: tuple[Future[None], OffsetUpdates, PreparedBatch]) -> None:
            future, updates, prepared = job
            future.result()
            totals.add(prepared)
            if self.on_commit is not None:
                self.on_commit(updates)
            if self.progress is not None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                self.progress(
                    f"{self.topic}: {totals.messages} messages, {totals.rows} rows, "
                    f"{totals.dead} dead letters, {totals.messages / elapsed:,.0f} msg/s"
                )

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pp-writer") as pool:
            try:
                for messages, positions in batches:
                    prepared = transform_batch(messages, self.mapping, self.validator, self.options)
                    updates = _offset_updates(self.expected, positions)
                    if inflight is not None:
                        job, inflight = inflight, None
                        flush(job)
                    future = pool.submit(
                        write_batch,
                        self.warehouse,
                        self.target,
                        prepared.rows,
                        prepared.dead_letters,
                        updates,
                        asset_key=self.asset_key,
                        topic=self.topic,
                        run_id=self.run_id,
                    )
                    inflight = (future, updates, prepared)
                if inflight is not None:
                    job, inflight = inflight, None
                    flush(job)
            finally:
                if inflight is not None:
                    # Let the in-flight write end so the connection is idle before closing.
                    try:
                        inflight[0].result()
                    except Exception:
                        logger.debug("in-flight batch failed during shutdown", exc_info=True)
        return totals


def _effective_parallelism(parallelism: int, warehouse: Warehouse, max_messages: int | None) -> int:
    """Return the worker count: 1 for SQLite (a single writer), at most one per capped message."""
    if isinstance(warehouse, SqliteWarehouse):
        return 1
    workers = max(1, parallelism)
    return workers if max_messages is None else max(1, min(workers, max_messages))


def _split_cap(
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


def _partition_groups(
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


def _run_groups(
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
        if progress is None:
            return None
        say = progress

        def locked(message: str) -> None:
            with lock:
                say(f"[worker {index + 1}/{len(groups)}] {message}")

        return locked

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
                worker_consumer.close()
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
        totals.messages += group_totals.messages
        totals.rows += group_totals.rows
        totals.dead += group_totals.dead
        expected.update(moved)
    if error is not None:
        raise error
    return totals


def _offset_updates(
    expected: dict[int, int | None], positions: Mapping[int, int]
) -> dict[int, tuple[int | None, int]]:
    updates: dict[int, tuple[int | None, int]] = {}
    for partition, new in positions.items():
        old = expected[partition]
        if old != new:
            updates[partition] = (old, new)
            expected[partition] = new
    return updates


def _retention_jumps(
    ranges: Mapping[int, PartitionRange], expected: dict[int, int | None]
) -> dict[int, tuple[int | None, int]]:
    """Offset-only moves for partitions whose stored offset fell below the low watermark."""
    jumps: dict[int, tuple[int | None, int]] = {}
    for partition, planned in ranges.items():
        current = expected[partition]
        if current is not None and current < planned.start:
            jumps[partition] = (current, planned.start)
            expected[partition] = planned.start
    return jumps


def _position(planned: PartitionRange, current: int | None) -> int:
    return planned.start if current is None else max(current, 0)


def _commit_to_kafka(consumer: Consumer, topic: str, updates: OffsetUpdates) -> None:
    if not updates:
        return
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, new) for p, (_old, new) in updates.items()],
            asynchronous=False,
        )
    except KafkaException as error:
        # The database holds the truth; the group offset only feeds external lag tools.
        logger.warning("could not commit consumer-group offsets of %s: %s", topic, error)


def _lag_left(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, PartitionRange],
    expected: Mapping[int, int | None],
    timeout: float,
) -> int:
    try:
        marks = watermarks(consumer, topic, sorted(ranges), min(timeout, 5.0))
    except BrokerUnavailable:
        marks = {p: (r.start, r.end) for p, r in ranges.items()}
    lag = 0
    for partition, (low, high) in marks.items():
        current = expected.get(partition)
        lag += max(0, high - max(low, current if current is not None else low))
    return lag


def read_lag(
    topic: Topic,
    *,
    warehouse_url: str,
    kafka_config: dict[str, str],
    timeout: float = 5.0,
) -> dict[int, PartitionLag]:
    """Return each partition's stored offset and end offset (one topic; see ``read_lags``).

    Args:
        topic: The topic (with its table configuration).
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        kafka_config: librdkafka settings.
        timeout: Seconds to wait for the broker in total.

    Returns:
        ``PartitionLag(stored, end)`` per partition; ``stored`` is where ingestion would start
        (the low watermark when nothing is stored yet or retention deleted older messages).

    Raises:
        BrokerUnavailable: The broker did not answer within ``timeout``.
    """
    table = _table_of(topic)
    errors: dict[str, Exception] = {}
    lags = read_lags(
        [topic],
        warehouse_urls={table.data_source: warehouse_url},
        kafka_config=kafka_config,
        timeout=timeout,
        errors=errors,
    )
    if topic.name in errors:
        raise errors[topic.name]
    return lags[topic.name]


def _select_dead_letters(
    warehouse: Warehouse, asset_key: str, topic: str, limit: int | None
) -> list[DeadLetterRecord]:
    mark = "%s" if isinstance(warehouse, PostgresWarehouse) else "?"
    sql = (
        f'SELECT id, asset_key, topic, partition, "offset", key, raw, reason, run_id, created_at '
        f"FROM {DEAD_LETTERS_TABLE} WHERE asset_key = {mark} AND topic = {mark} "
        'ORDER BY partition, "offset"'
    )
    params: tuple[Any, ...] = (asset_key, topic)
    if limit is not None:
        sql += f" LIMIT {mark}"
        params = (*params, limit)
    rows = warehouse.conn.execute(sql, params).fetchall()
    return [
        DeadLetterRecord(
            id=int(r[0]),
            asset_key=r[1],
            topic=r[2],
            partition=int(r[3]),
            offset=int(r[4]),
            key=bytes(r[5]) if r[5] is not None else None,
            raw=bytes(r[6]) if r[6] is not None else None,
            reason=r[7],
            run_id=r[8],
            created_at=r[9],
        )
        for r in rows
    ]


def list_dead_letters(
    topic: Topic, *, warehouse_url: str, limit: int | None = 100
) -> list[DeadLetterRecord]:
    """Return the stored dead letters of a topic's table, in partition/offset order.

    Args:
        topic: The topic (with its table configuration).
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        limit: At most this many (None: all).

    Returns:
        The dead letters.
    """
    table = _table_of(topic)
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        return _select_dead_letters(warehouse, asset_key_of(table), topic.name, limit)
    finally:
        warehouse.close()


def replay_dead_letters(
    topic: Topic,
    *,
    warehouse_url: str,
    run_id: str,
    limit: int | None = None,
    decode_options: DecodeOptions | None = None,
) -> ReplayResult:
    """Re-map a topic's dead letters with the current registry; write those that now pass.

    Messages that map are written (upserted by key, the higher offset winning) and removed from
    the dead-letter table in the same transaction; those still failing stay, with their reason
    updated. Offsets are untouched. A replayed old message can overwrite a newer row with the
    same key (it is written now); replay before newer data arrives when that matters.

    Args:
        topic: The topic, with its (fixed) table configuration and schema.
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        run_id: Id recorded on still-failing dead letters.
        limit: Replay at most this many (None: all).
        decode_options: Size limit and key rule.

    Returns:
        How many were replayed, written and are still failing.
    """
    table = _table_of(topic)
    asset_key = asset_key_of(table)
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        target = warehouse.ensure_table(table)
        records = _select_dead_letters(warehouse, asset_key, topic.name, limit)
        if not records:
            return ReplayResult(0, 0, 0)
        mapping = compile_mapping(table)
        validator = compile_validator(topic.json_schema)
        by_position = {(r.partition, r.offset): r.id for r in records}
        prepared = transform_batch(
            [(r.partition, r.offset, r.key, r.raw) for r in records],
            mapping,
            validator,
            decode_options or DecodeOptions(),
        )
        failing = {(d.partition, d.offset): d.reason for d in prepared.dead_letters}
        still = [(by_position[pos], reason) for pos, reason in failing.items()]
        resolved = [ident for pos, ident in by_position.items() if pos not in failing]
        write_replay(warehouse, target, prepared.rows, resolved, still, run_id)
        return ReplayResult(len(records), len(prepared.rows), len(still))
    finally:
        warehouse.close()
