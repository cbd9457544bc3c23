"""Batched lag reading for the sensors: O(1) round trips per tick, whatever the number of tables.

:func:`read_lags` reads the stored offsets of many tables with one SQL query per warehouse (no
DDL: a missing state table means nothing is stored yet), the partitions of all their topics with
one metadata request, and the low and high watermarks of all those partitions with two batched
ListOffsets calls (earliest and latest; librdkafka sends one request per partition leader).
Topics the broker does not know are reported with no partitions (no lag) and are never
auto-created by the lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_platform.ingestion.kafka_offsets import read_watermarks
from pipeline_platform.ingestion.tables import asset_key_of, table_of
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import connect_warehouse

logger = logging.getLogger(__name__)

__all__ = ["PartitionLag", "WarehouseUrls", "read_lag", "read_lags"]

WarehouseUrls = Mapping[str, str] | Callable[[str], str]
"""Data source name → warehouse URL, as a mapping or a function."""

StoredKey = tuple[str, str]  # (asset_key, topic)


@dataclass(frozen=True)
class PartitionLag:
    """A partition's stored next offset (or where ingestion would start) and its end offset.

    ``lost_from`` is the stored offset when retention deleted it and later messages before they
    were ingested (``stored`` is then the low watermark, where ingestion will resume).
    """

    stored: int
    end: int
    lost_from: int | None = None

    @property
    def lag(self) -> int:
        """Messages not yet ingested."""
        return max(0, self.end - self.stored)

    @property
    def lost(self) -> tuple[int, int] | None:
        """The ``(first, last)`` offsets deleted before ingestion, or None."""
        return None if self.lost_from is None else (self.lost_from, self.stored - 1)


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
    stored_of = {
        topic.name: stored.get((asset_key_of(topic.table), topic.name), {})
        for topic in readable
        if topic.table is not None
    }

    def need_low(topic: str, partition: int, high: int) -> bool:
        # The low watermark only matters where nothing is stored or the table is behind.
        known = stored_of.get(topic, {}).get(partition)
        return known is None or known < high

    marks = read_watermarks(
        [topic.name for topic in readable], dict(kafka_config), timeout, failed, need_low
    )
    result: dict[str, dict[int, PartitionLag]] = {}
    for topic in readable:
        if topic.name in failed:
            continue
        assert topic.table is not None
        known = stored.get((asset_key_of(topic.table), topic.name), {})
        result[topic.name] = {
            partition: _partition_lag(known.get(partition), low, high)
            for partition, (low, high) in sorted(marks.get(topic.name, {}).items())
        }
    return result


def _partition_lag(stored: int | None, low: int, high: int) -> PartitionLag:
    if stored is None:
        return PartitionLag(stored=low, end=high)
    return PartitionLag(
        stored=max(stored, low), end=high, lost_from=stored if stored < low else None
    )


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

    One read-only connection and one query; no DDL: a missing offsets table gives no rows.
    """
    warehouse = connect_warehouse(url, connect_timeout=max(1, round(timeout)), read_only=True)
    try:
        return warehouse.read_all_offsets(asset_keys)
    finally:
        warehouse.close()


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
    table = table_of(topic)
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
