"""Offset tracking of one run: expected offsets, retention jumps, Kafka commits, lag left."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline_platform.ingestion.kafka_offsets import BrokerUnavailable, topic_watermarks
from pipeline_platform.ingestion.reader import PartitionRange
from pipeline_platform.warehouse import OffsetUpdates

logger = logging.getLogger(__name__)


def offset_updates(
    expected: dict[int, int | None], positions: Mapping[int, int]
) -> dict[int, tuple[int | None, int]]:
    """Return the compare-and-set of a batch's positions and move ``expected`` along."""
    updates: dict[int, tuple[int | None, int]] = {}
    for partition, new in positions.items():
        old = expected[partition]
        if old != new:
            updates[partition] = (old, new)
            expected[partition] = new
    return updates


def retention_jumps(
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


def position(planned: PartitionRange, current: int | None) -> int:
    """Return a partition's next offset after the run."""
    return planned.start if current is None else max(current, 0)


def commit_to_kafka(
    consumer: Consumer, topic: str, updates: OffsetUpdates, wait: bool = False
) -> None:
    """Commit the consumer-group offsets after a database commit (for external lag tools).

    Batches commit asynchronously (a broker that dies mid-run must not stall the run on its
    commits); the end of a run commits its final positions synchronously (``wait``).
    """
    if not updates:
        return
    offsets = [TopicPartition(topic, p, new) for p, (_old, new) in updates.items()]
    try:
        if wait:
            # A synchronous commit to a broker that went away blocks for a minute: ask for
            # metadata first (bounded), and skip the commit when the broker does not answer.
            consumer.list_topics(topic, timeout=2.0)
            consumer.commit(offsets=offsets, asynchronous=False)
        else:
            consumer.commit(offsets=offsets, asynchronous=True)
    except KafkaException as error:
        # The database holds the truth; the group offset only feeds external lag tools.
        logger.warning("could not commit consumer-group offsets of %s: %s", topic, error)


def lag_left(
    kafka_config: Mapping[str, str],
    topic: str,
    ranges: Mapping[int, PartitionRange],
    expected: Mapping[int, int | None],
    timeout: float,
    admin: AdminClient | None = None,
) -> int:
    """Return the messages left unread after the run (planned ends when the broker is away).

    ``admin`` is the run's watermark client to reuse (see ``topic_watermarks``).
    """
    try:
        marks = topic_watermarks(kafka_config, topic, min(timeout, 5.0), admin)
    except BrokerUnavailable:
        marks = {p: (r.start, r.end) for p, r in ranges.items()}
    lag = 0
    for partition, (low, high) in marks.items():
        current = expected.get(partition)
        lag += max(0, high - max(low, current if current is not None else low))
    return lag
