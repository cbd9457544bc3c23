"""Batched lag reading for the sensors: O(1) round trips per tick, whatever the number of tables.

:func:`read_lags` reads the stored offsets of many tables with one SQL query per warehouse (no
DDL: a missing state table means nothing is stored yet), the partitions of all their topics with
one metadata request, and the low and high watermarks of all those partitions with two batched
ListOffsets calls (earliest and latest; librdkafka sends one request per partition leader).
Topics the broker does not know are reported with no partitions (no lag) and are never
auto-created by the lookup.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from sqlalchemy.engine import make_url

from pipeline_platform.ingestion.reader import BrokerUnavailable
from pipeline_platform.ingestion.warehouse import OFFSETS_TABLE, asset_key_of, postgres_conninfo
from pipeline_platform.registry.document import Topic

logger = logging.getLogger(__name__)

__all__ = ["PartitionLag", "WarehouseUrls", "read_lags"]

WarehouseUrls = Mapping[str, str] | Callable[[str], str]
"""Data source name → warehouse URL, as a mapping or a function."""

StoredKey = tuple[str, str]  # (asset_key, topic)

LIST_OFFSETS_CHUNK = 500
"""Partitions per ListOffsets call. One call over many partitions costs more than linearly
(mock broker, 1,000 topics x 4 partitions, earliest + latest: one call per spec 0.46-0.52 s,
chunks of 1,000 0.30-0.39 s, chunks of 500 0.29-0.31 s). All chunks are sent before any answer
is awaited, so they still take one round trip."""


@dataclass(frozen=True)
class PartitionLag:
    """A partition's stored next offset (or where ingestion would start) and its end offset."""

    stored: int
    end: int

    @property
    def lag(self) -> int:
        """Messages not yet ingested."""
        return max(0, self.end - self.stored)


def read_lags(
    topics: Sequence[Topic],
    *,
    warehouse_urls: WarehouseUrls,
    kafka_config: Mapping[str, Any],
    timeout: float = 5.0,
    errors: dict[str, Exception] | None = None,
) -> dict[str, dict[int, PartitionLag]]:
    """Return the lag of many topics' tables with a constant number of round trips.

    Args:
        topics: Topics with their table configuration.
        warehouse_urls: Data source name → SQLAlchemy-style warehouse URL (mapping or function).
        kafka_config: librdkafka settings (bootstrap servers, security).
        timeout: Seconds to wait for the broker in total (and for each warehouse connection).
        errors: Filled with topic name → exception for topics whose lag could not be read
            (no table, unknown data source, warehouse or per-topic broker error).

    Returns:
        Topic name → ``PartitionLag(stored, end)`` per partition, for every topic not in
        ``errors``; ``stored`` is where ingestion would start (the low watermark when nothing is
        stored yet or retention deleted older messages). A topic the broker does not have maps
        to ``{}``.

    Raises:
        BrokerUnavailable: The broker did not answer within ``timeout``.
    """
    failed: dict[str, Exception] = {} if errors is None else errors
    wanted = _unique_with_tables(topics, failed)
    stored = _stored_offsets(wanted, warehouse_urls, timeout, failed)
    readable = [topic for topic in wanted if topic.name not in failed]
    marks = _watermarks([topic.name for topic in readable], dict(kafka_config), timeout, failed)
    result: dict[str, dict[int, PartitionLag]] = {}
    for topic in readable:
        if topic.name in failed:
            continue
        assert topic.table is not None
        known = stored.get((asset_key_of(topic.table), topic.name), {})
        result[topic.name] = {
            partition: PartitionLag(stored=max(known.get(partition, low), low), end=high)
            for partition, (low, high) in sorted(marks.get(topic.name, {}).items())
        }
    return result


def _unique_with_tables(topics: Iterable[Topic], failed: dict[str, Exception]) -> list[Topic]:
    seen: dict[str, Topic] = {}
    for topic in topics:
        if topic.table is None:
            failed[topic.name] = ValueError(
                f"topic {topic.name} has no table configured: nothing to ingest"
            )
        else:
            seen.setdefault(topic.name, topic)
    return list(seen.values())


# -- warehouse --------------------------------------------------------------------------------


def _stored_offsets(
    topics: Sequence[Topic],
    warehouse_urls: WarehouseUrls,
    timeout: float,
    failed: dict[str, Exception],
) -> dict[StoredKey, dict[int, int]]:
    """Read stored offsets with one query per distinct warehouse URL."""
    by_url: dict[str, list[Topic]] = {}
    for topic in topics:
        assert topic.table is not None
        source = topic.table.data_source
        try:
            url = warehouse_urls(source) if callable(warehouse_urls) else warehouse_urls[source]
        except KeyError:
            failed[topic.name] = KeyError(f"no warehouse URL for data source {source!r}")
            continue
        except Exception as error:
            failed[topic.name] = error
            continue
        by_url.setdefault(url, []).append(topic)
    stored: dict[StoredKey, dict[int, int]] = {}
    for url, group in by_url.items():
        keys = {(asset_key_of(t.table), t.name) for t in group if t.table is not None}
        try:
            rows = _select_offsets(url, sorted({asset for asset, _ in keys}), timeout)
        except Exception as error:
            for topic in group:
                failed[topic.name] = error
            continue
        for asset, topic_name, partition, offset in rows:
            if (asset, topic_name) in keys:
                stored.setdefault((asset, topic_name), {})[int(partition)] = int(offset)
    return stored


def _select_offsets(
    url: str, asset_keys: Sequence[str], timeout: float
) -> list[tuple[str, str, int, int]]:
    """Return ``(asset_key, topic, partition, next_offset)`` rows of the given assets.

    One connection and one query; no DDL: a missing offsets table gives no rows.

    Raises:
        ValueError: The URL names an unsupported backend.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    columns = f"SELECT asset_key, topic, partition, next_offset FROM {OFFSETS_TABLE}"
    if backend in ("postgresql", "postgres", "timescaledb"):
        import psycopg

        with psycopg.connect(
            postgres_conninfo(url), autocommit=True, connect_timeout=max(1, round(timeout))
        ) as conn:
            try:
                return [
                    (str(a), str(t), int(p), int(o))
                    for a, t, p, o in conn.execute(
                        f"{columns} WHERE asset_key = ANY(%s)", (list(asset_keys),)
                    ).fetchall()
                ]
            except psycopg.errors.UndefinedTable:
                return []
    if backend == "sqlite":
        path = parsed.database or ":memory:"
        if path == ":memory:":
            return []
        try:
            lite = sqlite3.connect(
                f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=timeout
            )
        except sqlite3.OperationalError:
            return []  # no database file yet: nothing stored
        try:
            rows = lite.execute(
                f"{columns} WHERE asset_key IN (SELECT value FROM json_each(?))",
                (json.dumps(list(asset_keys)),),
            ).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        finally:
            lite.close()
        return [(str(a), str(t), int(p), int(o)) for a, t, p, o in rows]
    raise ValueError(f"unsupported warehouse backend {backend!r} (use postgresql or sqlite)")


# -- broker -----------------------------------------------------------------------------------


def admin_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the AdminClient settings: the cluster settings, never auto-creating topics."""
    config: dict[str, Any] = {"logger": logger}
    config.update(kafka_config)
    config["allow.auto.create.topics"] = False
    return config


def _watermarks(
    topic_names: Sequence[str],
    kafka_config: dict[str, Any],
    timeout: float,
    failed: dict[str, Exception],
) -> dict[str, dict[int, tuple[int, int]]]:
    """Return ``(low, high)`` per partition of every topic: one metadata + batched ListOffsets.

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
    admin = AdminClient(admin_config(kafka_config))
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
    left = max(0.1, deadline - time.monotonic())
    lows: dict[TopicPartition, Future[Any]] = {}
    highs: dict[TopicPartition, Future[Any]] = {}
    try:
        # Every request is sent before any answer is awaited: the chunks travel concurrently.
        for start in range(0, len(partitions), LIST_OFFSETS_CHUNK):
            chunk = partitions[start : start + LIST_OFFSETS_CHUNK]
            for spec, futures in ((OffsetSpec.earliest, lows), (OffsetSpec.latest, highs)):
                futures.update(
                    admin.list_offsets(
                        {tp: spec() for tp in chunk},
                        isolation_level=isolation,
                        request_timeout=left,
                    )
                )
    except KafkaException as error:
        raise BrokerUnavailable(f"Kafka did not return offsets: {error}") from error
    pending: list[Future[Any]] = [*lows.values(), *highs.values()]
    _done, not_done = wait(pending, timeout=left + 1.0)
    if not_done:
        raise BrokerUnavailable(
            f"Kafka did not return offsets of {len(not_done)} partition(s) within {timeout:g} s"
        )
    partition_errors: dict[str, Exception] = {}
    low_of = _offsets(lows, partition_errors)
    high_of = _offsets(highs, partition_errors)
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
