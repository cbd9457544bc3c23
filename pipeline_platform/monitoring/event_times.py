"""Kafka timestamps around the stored offsets: the last ingested and oldest unconsumed message.

One consumer, assigned to every partition of interest at once, reads at most two messages per
partition: the one just before the stored offset (the last event ingested) and the one at it
(the oldest event not yet ingested, whose age is the lag in seconds). Nothing is committed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.ingestion.lag import PartitionLag
from pipeline_platform.ingestion.reader import close_consumer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventTimes:
    """Kafka timestamps (seconds since the epoch) of one topic's messages around its offsets.

    Attributes:
        last_ingested: Newest timestamp among the last ingested message of each partition.
        oldest_pending: Oldest timestamp among the first not-ingested message of each partition.
    """

    last_ingested: float | None = None
    oldest_pending: float | None = None


def read_event_times(
    lags: Mapping[str, Mapping[int, PartitionLag]],
    kafka_config: Mapping[str, Any],
    timeout: float = 2.0,
) -> dict[str, EventTimes]:
    """Read the timestamps around the stored offset of every partition, with one consumer.

    Args:
        lags: Topic → partition → stored and end offsets (from ``read_lags``).
        kafka_config: librdkafka settings.
        timeout: Seconds to wait for the messages in total.

    Returns:
        Topic → :class:`EventTimes` (fields None where no message was read).
    """
    wanted: dict[tuple[str, int], tuple[int, int]] = {}  # (topic, p) → (start, stop offset)
    for topic, partitions in lags.items():
        for partition, lag in partitions.items():
            start = lag.stored - 1 if lag.stored > 0 else lag.stored
            stop = min(lag.end, lag.stored + 1)
            if stop > start:
                wanted[(topic, partition)] = (start, stop)
    if not wanted:
        return {}
    config = {
        **kafka_config,
        "group.id": f"pipeline-platform-monitor-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",  # the message before a stored offset may be gone
        "logger": logger,
    }
    last: dict[str, float] = {}
    oldest: dict[str, float] = {}
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in wanted.items()])
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=max(0.05, deadline - time.monotonic())):
                if message.error() is not None:
                    continue
                key = (str(message.topic()), int(message.partition() or 0))
                if key not in pending:
                    continue
                offset = int(message.offset() or 0)
                stored = lags[key[0]][key[1]].stored
                seconds = message.timestamp()[1] / 1000.0
                if offset < stored:
                    last[key[0]] = max(last.get(key[0], seconds), seconds)
                elif offset == stored:
                    oldest[key[0]] = min(oldest.get(key[0], seconds), seconds)
                if offset + 1 >= wanted[key][1]:
                    pending.discard(key)
    finally:
        close_consumer(consumer, timeout=5.0)
    return {
        topic: EventTimes(last_ingested=last.get(topic), oldest_pending=oldest.get(topic))
        for topic in {*last, *oldest}
    }
