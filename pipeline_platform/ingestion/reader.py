"""The offset-range reader: from the stored offsets to the end offsets captured at start.

A confluent_kafka Consumer is *assigned* (no group join, no rebalance) the partitions with work,
at their stored offsets; it reads with batched ``consume()`` and stops each partition at the
high watermark captured at start, so a run ingests what was available when it began. Messages
deleted by retention (stored offset below the low watermark) are skipped and reported as a gap;
partition EOF ends a partition early instead of waiting; a broker that goes quiet raises
:class:`ReadTimeout` instead of hanging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline_platform.ingestion.decode import RawMessage
from pipeline_platform.ingestion.kafka_offsets import BrokerUnavailable

__all__ = [
    "BrokerUnavailable",
    "PartitionRange",
    "ReadTimeout",
    "consumer_config",
    "group_id_for",
    "plan_ranges",
    "read_batches",
]

logger = logging.getLogger(__name__)


class ReadTimeout(RuntimeError):
    """No message arrived for too long while partitions still had data to read."""


@dataclass(frozen=True)
class PartitionRange:
    """What one run reads from one partition.

    Attributes:
        partition: Partition number.
        stored: The stored next offset, or None when the table never ingested this partition.
        start: Where reading starts (stored, or the low watermark when stored is older/absent).
        end: The high watermark captured at start (exclusive).
        gap: Messages lost to retention between ``stored`` and ``start``.
    """

    partition: int
    stored: int | None
    start: int
    end: int
    gap: int = 0

    @property
    def lost(self) -> tuple[int, int] | None:
        """The offsets deleted by retention before ingestion (first, last), or None."""
        if not self.gap or self.stored is None:
            return None
        return (self.stored, self.stored + self.gap - 1)


def group_id_for(data_source: str, table: str) -> str:
    """Return the consumer group id of a table: ``pipeline-platform.<data_source>.<table>``."""
    return f"pipeline-platform.{data_source}.{table}"


CLOSE_TIMEOUT_SECONDS = 5.0


def close_consumer(consumer: Consumer, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
    """Close a consumer, waiting at most ``timeout`` seconds.

    librdkafka's close can block without end when the broker died under the consumer (measured
    here: a worker of a run stuck 18 minutes in ``close`` after the broker was killed). The
    offsets that count are in the warehouse, so nothing is lost by not waiting: the close goes
    on in a daemon thread and the run fails or ends on time.
    """
    done = threading.Event()

    def close() -> None:
        try:
            consumer.close()
        except Exception as error:  # already closed, or the broker went away
            logger.warning("Kafka consumer close failed: %s", error)
        finally:
            done.set()

    threading.Thread(target=close, name="pp-consumer-close", daemon=True).start()
    if not done.wait(timeout):
        logger.warning(
            "Kafka consumer not closed after %.0f s (broker unreachable?); left to close "
            "in the background",
            timeout,
        )


def consumer_config(kafka_config: Mapping[str, Any], group_id: str) -> dict[str, Any]:
    """Return the consumer configuration for reading assigned ranges.

    Args:
        kafka_config: librdkafka settings (bootstrap servers, security).
        group_id: Consumer group id used for committing offsets.

    Returns:
        The settings with auto commit off and partition EOF events on.
    """
    config: dict[str, Any] = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "queued.max.messages.kbytes": 262_144,
        # A read stops at the end offsets captured at start, so a fetch never has to wait for
        # new data; a long wait only delays the requests queued behind the last fetch on the
        # connection (the final offset commit: about 100 ms per table at the default).
        "fetch.wait.max.ms": 10,
        # Over its queue thresholds librdkafka stops fetching for fetch.queue.backoff.ms
        # (default 1,000 ms): a plain consumer of 16 partitions took 1.09 s instead of 0.16 s.
        "fetch.queue.backoff.ms": 10,
        "logger": logger,
    }
    config.update(kafka_config)
    config["group.id"] = group_id
    return config


def plan_ranges(
    marks: Mapping[int, tuple[int, int]], stored: Mapping[int, int], topic: str = ""
) -> dict[int, PartitionRange]:
    """Decide each partition's range from the watermarks captured at start.

    Args:
        marks: ``(low, high)`` watermarks per partition.
        stored: Stored next offsets per partition.
        topic: Topic name, for the log.

    Returns:
        The range per partition (possibly empty: ``start >= end``); ``gap`` counts messages
        deleted by retention between the stored offset and the low watermark.
    """
    ranges = {}
    for partition, (low, high) in sorted(marks.items()):
        known = stored.get(partition)
        start = low if known is None else max(known, low)
        gap = 0 if known is None else max(0, low - known)
        if gap:
            logger.warning(
                "%s[%d]: offsets %d..%d were deleted by retention before ingestion",
                topic,
                partition,
                known,
                low - 1,
            )
        ranges[partition] = PartitionRange(partition, known, start, max(high, start), gap)
    return ranges


def read_batches(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, PartitionRange],
    *,
    batch_size: int,
    max_messages: int | None = None,
    idle_timeout: float = 30.0,
    stop: threading.Event | None = None,
) -> Iterator[tuple[list[RawMessage], dict[int, int]]]:
    """Read the ranges and yield batches.

    Args:
        consumer: The consumer (not yet assigned).
        topic: Topic name.
        ranges: The planned ranges.
        batch_size: Messages per yielded batch (at most).
        max_messages: Stop after this many messages in total.
        idle_timeout: Seconds without any message or EOF before giving up.
        stop: When set (by another worker's failure), stop reading without yielding the
            partial batch.

    Yields:
        ``(messages, positions)``: the batch as ``(partition, offset, key, value)`` tuples and
        each touched partition's next offset after the batch (including partitions that only
        moved past a gap or an EOF).

    Raises:
        ReadTimeout: Nothing arrived for ``idle_timeout`` seconds while data was pending.
        KafkaException: A fatal consumer error.
    """
    pending = {p: r.end for p, r in ranges.items() if r.start < r.end}
    position = {p: ranges[p].start for p in pending}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, p, position[p]) for p in sorted(pending)])
    remaining = max_messages if max_messages is not None else -1
    batch: list[RawMessage] = []
    touched: dict[int, int] = {}
    last_progress = time.monotonic()
    eof_code = KafkaError._PARTITION_EOF
    consume = consumer.consume

    ends = dict(pending)  # partition → end offset while pending, -1 once finished
    append = batch.append

    def finish(partition: int) -> None:
        pending.pop(partition, None)
        ends[partition] = -1
        consumer.pause([TopicPartition(topic, partition)])

    def _slow_path(message: Any) -> None:
        """EOF, errors and messages at or beyond the captured end."""
        partition = message.partition()
        error = message.error()
        if error is not None:
            if error.code() == eof_code:
                end = pending.get(partition)
                if end is not None:
                    seen = max(position[partition], last.get(partition, -1) + 1)
                    at = min(max(message.offset(), seen), end)
                    last.pop(partition, None)
                    position[partition] = touched[partition] = at
                    finish(partition)
                return
            if error.fatal():
                raise KafkaException(error)
            logger.warning("%s[%s]: %s", topic, partition, error.str())
            return
        end = pending.get(partition)
        if end is not None:  # offset >= end: everything before it was read
            last.pop(partition, None)
            position[partition] = touched[partition] = end
            finish(partition)

    while pending and remaining != 0:
        if stop is not None and stop.is_set():
            return
        want = batch_size - len(batch)
        if remaining > 0:
            want = min(want, remaining)
        # Ask for no more than is left before the end offsets: ``consume`` returns as soon as it
        # has ``want`` messages, so a small read does not wait out the timeout (100 ms a table).
        left = sum(end - position[p] for p, end in pending.items())
        messages: list[Any] = consume(num_messages=max(1, min(want, left)), timeout=0.1)
        before = len(batch)
        unfinished = len(pending)
        last: dict[int, int] = {}
        for message in messages:
            # Fast path: an in-range message (finished partitions have an end of -1).
            if message.error() is None:
                partition = message.partition()
                offset = message.offset()
                if offset < ends.get(partition, -1):
                    append((partition, offset, message.key(), message.value()))
                    last[partition] = offset
                    continue
            _slow_path(message)
        for partition, offset in last.items():
            if offset + 1 >= ends.get(partition, -1) and partition in pending:
                position[partition] = touched[partition] = pending[partition]
                finish(partition)
            else:
                position[partition] = touched[partition] = offset + 1
        # Progress is a message or a finished partition; error events (a broker that went
        # away: "connection refused" again and again) are not.
        if len(batch) > before or len(pending) < unfinished:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > idle_timeout:
            raise ReadTimeout(
                f"no message from {topic} for {idle_timeout:g} s; still pending: "
                + ", ".join(f"[{p}] at {position[p]} of {e}" for p, e in sorted(pending.items()))
            )
        if remaining > 0:
            remaining = max(0, remaining - (len(batch) - before))
        if len(batch) >= batch_size or ((batch or touched) and (not pending or remaining == 0)):
            yield batch, touched
            batch, touched = [], {}
            append = batch.append
    if batch or touched:
        yield batch, touched
