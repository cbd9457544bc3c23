"""The ingestion service: the one entry point for the Dagster asset body, the sensor and the CLI.

``ingest_table`` reads a topic from the stored offsets to the end offsets captured at start and
writes every batch (rows, dead letters, next offsets) in one transaction; decoding and mapping
of batch N+1 overlaps the database write of batch N (:mod:`.pipeline`), over disjoint groups
of partitions (:mod:`.workers`). Consumer-group offsets are committed to Kafka after each
database commit, so standard lag tools work; the database stays the source of truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from pipeline_platform.ingestion.dead_letters import (
    DeadLetterRecord,
    ReplayResult,
    list_dead_letters,
    replay_dead_letters,
)
from pipeline_platform.ingestion.decode import DecodeOptions, compile_validator
from pipeline_platform.ingestion.kafka_offsets import (
    BrokerUnavailable,
    topic_watermarks,
    watermark_client,
)
from pipeline_platform.ingestion.lag import PartitionLag, read_lag, read_lags
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.ingestion.offsets import (
    commit_to_kafka,
    lag_left,
    position,
    retention_jumps,
)
from pipeline_platform.ingestion.pipeline import BatchPipeline, BatchTotals
from pipeline_platform.ingestion.processes import available as processes_available
from pipeline_platform.ingestion.reader import (
    PartitionRange,
    close_consumer,
    consumer_config,
    group_id_for,
    plan_ranges,
    read_batches,
)
from pipeline_platform.ingestion.tables import asset_key_of, table_of, table_spec_of
from pipeline_platform.ingestion.workers import (
    effective_parallelism,
    partition_groups,
    run_groups,
    run_groups_forked,
    split_cap,
)
from pipeline_platform.ingestion.writer import write_batch
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import Warehouse, connect_warehouse

logger = logging.getLogger(__name__)

__all__ = [
    "BatchPipeline",
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
        dead_letters: Messages dead-lettered (including rows the database refused).
        messages: Messages read.
        seconds: Wall time of the run.
        messages_per_second: ``messages / seconds``.
        lag_left: Messages still unread at the end (new arrivals or ``max_messages``).
        offsets: Per partition, ``(start, end)``: the next offset before and after the run.
        gaps: Messages lost to retention before they could be read.
        retention_lost: Per partition with a loss, the ``(first, last)`` offsets deleted by
            retention before ingestion (``gaps`` is their total count).
        recent_dead_letters: The run's last few dead letters as ``(partition, offset,
            reason)``, for the materialization metadata.
    """

    rows_written: int
    dead_letters: int
    messages: int
    seconds: float
    messages_per_second: float
    lag_left: int
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    gaps: int = 0
    retention_lost: dict[int, tuple[int, int]] = field(default_factory=dict)
    recent_dead_letters: tuple[tuple[int, int, str], ...] = ()


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
    warn: Callable[[str], None] | None = None,
    worker_processes: bool = False,
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
            partitions' rows, dead letters and offsets. 1 when the warehouse has a single
            writer (SQLite); ``max_messages`` is shared among the workers.
        warn: Called with one line per partition whose messages retention deleted before
            ingestion (the Dagster run log in a run).
        worker_processes: Run the partition workers in forked processes instead of threads
            (decoding and mapping are Python per message: threads share one core). A failing
            worker ends the others at once; their open batches roll back. ``progress`` is
            then called in the worker processes (pass one that writes to stdout, not to a
            connection of this process).

    Returns:
        The counts, rate, lag left, offset range per partition and retention losses.

    Raises:
        FencedError: Another run committed the same range first (this run's batch rolled back).
        ColumnTypeMismatch: A live column's type differs from the registry's (not migrated).
        BrokerUnavailable: The brokers did not answer.
        ReadTimeout: The broker stopped delivering pending messages.
    """
    table = table_of(topic)
    started = time.perf_counter()
    options = decode_options or DecodeOptions()
    asset_key = asset_key_of(table)
    group_id = group_id_for(table.data_source, table.name)
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        target = warehouse.ensure_table(table_spec_of(table))
        mapping = compile_mapping(table)
        validator = compile_validator(topic.json_schema)
        stored = warehouse.read_offsets(asset_key, topic.name)
        # One watermark client for the reads at start and end (one broker connection).
        admin: AdminClient | None = watermark_client(kafka_config)
        ranges = plan_ranges(
            topic_watermarks(kafka_config, topic.name, broker_timeout, admin), stored, topic.name
        )
        for partition, planned in ranges.items():
            if planned.lost is not None and warn is not None:
                first, last = planned.lost
                warn(
                    f"{topic.name}[{partition}]: {planned.gap} messages (offsets {first}..{last})"
                    f" were deleted by retention before ingestion into {asset_key}"
                )
        expected: dict[int, int | None] = {p: r.stored for p, r in ranges.items()}
        if progress is not None:
            progress(
                f"{topic.name} → {asset_key}: "
                f"{sum(max(0, r.end - r.start) for r in ranges.values())} messages to read "
                f"from {len(ranges)} partitions"
            )
        groups = partition_groups(
            ranges, effective_parallelism(parallelism, warehouse, max_messages)
        )
        caps = split_cap(max_messages, groups)

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
                on_commit=lambda updates: commit_to_kafka(worker_consumer, topic.name, updates),
                progress=worker_progress,
            )
            batches = read_batches(
                worker_consumer,
                topic.name,
                group,
                batch_size=batch_size,
                max_messages=caps[min(group, default=-1)],
                idle_timeout=idle_timeout,
                stop=stop,
            )
            totals = pipeline.run(batches)
            final = {
                p: (None, o)
                for p, o in group_expected.items()
                if o is not None and o != expected[p]
            }
            commit_to_kafka(worker_consumer, topic.name, final, wait=True)
            return totals, group_expected

        def connect() -> tuple[Warehouse, Consumer]:
            return connect_warehouse(warehouse_url), Consumer(
                consumer_config(kafka_config, group_id)
            )

        forked = worker_processes and len(groups) > 1 and processes_available()
        if forked:  # read before this process opens a consumer
            admin = None  # no Kafka client of this process lives across the fork
            totals = run_groups_forked(
                groups, run_group, expected, connect=connect, progress=progress
            )
        consumer = Consumer(consumer_config(kafka_config, group_id))
        try:
            if len(groups) <= 1:
                totals, moved = run_group(ranges, warehouse, consumer, None, progress)
                expected.update(moved)
            elif not forked:
                totals = run_groups(
                    groups,
                    run_group,
                    expected,
                    main=(warehouse, consumer),
                    connect=connect,
                    progress=progress,
                )
            jumps = retention_jumps(ranges, expected)
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
                commit_to_kafka(consumer, topic.name, jumps, wait=True)
        finally:
            close_consumer(consumer)
        left = lag_left(kafka_config, topic.name, ranges, expected, broker_timeout, admin)
    finally:
        warehouse.close()
    seconds = time.perf_counter() - started
    result = IngestionResult(
        rows_written=totals.rows,
        dead_letters=totals.dead,
        messages=totals.messages,
        seconds=seconds,
        messages_per_second=totals.messages / seconds if seconds > 0 else 0.0,
        lag_left=left,
        offsets={
            p: (r.start if r.stored is None else r.stored, position(r, expected[p]))
            for p, r in ranges.items()
        },
        gaps=sum(r.gap for r in ranges.values()),
        retention_lost={p: r.lost for p, r in ranges.items() if r.lost is not None},
        recent_dead_letters=tuple((d.partition, d.offset, d.reason) for d in totals.recent_dead),
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
