"""Kafka offsets for the reader and the lag sensor: one way to read watermarks.

:func:`read_watermarks` reads the partitions of any number of topics with one metadata request
and their low and high watermarks with two batched ListOffsets calls (earliest and latest;
librdkafka sends one request per partition leader). Topics the broker does not know are
reported with no partitions and are never auto-created by the lookup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from typing import Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

logger = logging.getLogger(__name__)

LIST_OFFSETS_CHUNK = 500
"""Partitions per ListOffsets call. One call over many partitions costs more than linearly
(mock broker, 1,000 topics x 4 partitions, earliest + latest: one call per spec 0.46-0.52 s,
chunks of 1,000 0.30-0.39 s, chunks of 500 0.29-0.31 s). All chunks are sent before any answer
is awaited, so they still take one round trip."""


class BrokerUnavailable(RuntimeError):
    """The Kafka brokers did not answer within the timeout."""


def topic_watermarks(
    kafka_config: Mapping[str, Any],
    topic: str,
    timeout: float,
    admin: AdminClient | None = None,
) -> dict[int, tuple[int, int]]:
    """Return ``(low, high)`` per partition of one topic (``{}`` when the broker lacks it).

    Args:
        kafka_config: librdkafka settings.
        topic: The topic.
        timeout: Seconds for the whole read.
        admin: A client from :func:`watermark_client` to reuse (an ingestion reads the
            watermarks at its start and end: one client saves a broker connection and
            bootstrap, about 25 ms per table); a new one when omitted.

    Raises:
        BrokerUnavailable: No metadata or offsets within ``timeout``.
    """
    failed: dict[str, Exception] = {}
    marks = read_watermarks([topic], dict(kafka_config), timeout, failed, admin=admin)
    if topic in failed:
        error = failed[topic]
        raise error if isinstance(error, BrokerUnavailable) else BrokerUnavailable(str(error))
    return marks.get(topic, {})


def admin_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the AdminClient settings: the cluster settings, never auto-creating topics."""
    config: dict[str, Any] = {"logger": logger}
    config.update(kafka_config)
    config["allow.auto.create.topics"] = False
    return config


def watermark_client(kafka_config: Mapping[str, Any]) -> AdminClient:
    """Return an AdminClient for :func:`read_watermarks` (never auto-creating topics)."""
    return AdminClient(admin_config(kafka_config))


def read_watermarks(
    topic_names: Sequence[str],
    kafka_config: dict[str, Any],
    timeout: float,
    failed: dict[str, Exception],
    need_low: Callable[[str, int, int], bool] | None = None,
    admin: AdminClient | None = None,
) -> dict[str, dict[int, tuple[int, int]]]:
    """Return ``(low, high)`` per partition of every topic: one metadata + batched ListOffsets.

    Args:
        topic_names: The topics.
        kafka_config: librdkafka settings.
        timeout: Seconds for the whole read.
        failed: Filled with topic name → error for topics whose offsets could not be read.
        need_low: When given, high watermarks are read first and the low watermark only of the
            partitions for which ``need_low(topic, partition, high)`` is true (a caught-up
            partition needs none: the lag sensor's steady state halves the offsets it asks
            for); the others report ``low == high``.
        admin: A client from :func:`watermark_client` to reuse; a new one when omitted.

    Raises:
        BrokerUnavailable: No metadata or no offsets within ``timeout``.
    """
    if not topic_names:
        return {}
    deadline = time.monotonic() + timeout
    isolation = (
        IsolationLevel.READ_UNCOMMITTED
        if str(kafka_config.get("isolation.level", "")).lower() == "read_uncommitted"
        else IsolationLevel.READ_COMMITTED  # what the ingestion consumer sees by default
    )
    admin = admin if admin is not None else watermark_client(kafka_config)
    try:
        # One request: for the one topic of ``read_lag``, or for all topics of the cluster
        # (librdkafka names at most one topic per call). ``allow.auto.create.topics`` is off,
        # so naming a missing topic does not create it.
        only = topic_names[0] if len(topic_names) == 1 else None
        metadata = admin.list_topics(topic=only, timeout=timeout)
    except KafkaException as error:
        raise BrokerUnavailable(f"Kafka did not answer within {timeout:g} s: {error}") from error
    marks: dict[str, dict[int, tuple[int, int]]] = {}
    partitions: list[TopicPartition] = []
    for name in topic_names:
        found = metadata.topics.get(name)
        if found is None or (
            found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            marks[name] = {}  # not on the broker (yet): no lag
        elif found.error is not None:
            failed[name] = BrokerUnavailable(f"no metadata for topic {name}: {found.error}")
        else:
            marks[name] = {}
            partitions.extend(TopicPartition(name, p) for p in sorted(found.partitions))
    if not partitions:
        return marks
    partition_errors: dict[str, Exception] = {}
    if need_low is None:
        specs = {"earliest": partitions, "latest": partitions}
        found_offsets = _list_offsets(admin, specs, isolation, deadline, timeout)
        low_of = _offsets(found_offsets["earliest"], partition_errors)
        high_of = _offsets(found_offsets["latest"], partition_errors)
    else:
        latest = _list_offsets(admin, {"latest": partitions}, isolation, deadline, timeout)
        high_of = _offsets(latest["latest"], partition_errors)
        wanted = [
            tp
            for tp in partitions
            if (key := (tp.topic, tp.partition)) in high_of and need_low(*key, high_of[key])
        ]
        earliest = _list_offsets(admin, {"earliest": wanted}, isolation, deadline, timeout)
        low_of = {key: high for key, high in high_of.items()}
        low_of.update(_offsets(earliest["earliest"], partition_errors))
    if partition_errors and not low_of and not high_of:
        sample = next(iter(partition_errors.values()))
        raise BrokerUnavailable(f"Kafka returned no offsets: {sample}")
    failed.update(partition_errors)
    for tp in partitions:
        key = (tp.topic, tp.partition)
        if tp.topic in failed or key not in low_of or key not in high_of:
            marks.pop(tp.topic, None)
            continue
        marks[tp.topic][tp.partition] = (low_of[key], high_of[key])
    return marks


def _list_offsets(
    admin: AdminClient,
    specs: Mapping[str, Sequence[TopicPartition]],
    isolation: IsolationLevel,
    deadline: float,
    timeout: float,
) -> dict[str, dict[TopicPartition, Future[Any]]]:
    """Send ListOffsets for every spec (``earliest`` / ``latest``) in chunks; await them all.

    Raises:
        BrokerUnavailable: A request failed or not every answer came before ``deadline``.
    """
    left = max(0.1, deadline - time.monotonic())
    futures: dict[str, dict[TopicPartition, Future[Any]]] = {name: {} for name in specs}
    try:
        # Every request is sent before any answer is awaited: the chunks travel concurrently.
        for name, partitions in specs.items():
            spec = OffsetSpec.earliest if name == "earliest" else OffsetSpec.latest
            for start in range(0, len(partitions), LIST_OFFSETS_CHUNK):
                chunk = partitions[start : start + LIST_OFFSETS_CHUNK]
                futures[name].update(
                    admin.list_offsets(
                        {tp: spec() for tp in chunk},
                        isolation_level=isolation,
                        request_timeout=left,
                    )
                )
    except KafkaException as error:
        raise BrokerUnavailable(f"Kafka did not return offsets: {error}") from error
    pending = [future for by_partition in futures.values() for future in by_partition.values()]
    _done, not_done = wait(pending, timeout=left + 1.0)
    if not_done:
        raise BrokerUnavailable(
            f"Kafka did not return offsets of {len(not_done)} partition(s) within {timeout:g} s"
        )
    return futures


def _offsets(
    futures: Mapping[TopicPartition, Future[Any]], failed: dict[str, Exception]
) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        try:
            offsets[(tp.topic, tp.partition)] = int(future.result().offset)
        except KafkaException as error:
            failed.setdefault(
                tp.topic,
                BrokerUnavailable(f"no offsets for {tp.topic}[{tp.partition}]: {error}"),
            )
    return offsets
