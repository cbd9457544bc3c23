"""What a Kafka lag sensor tick reports besides run requests: time series and check verdicts.

Per topic, an observation on the topic asset with ``lag_messages``, ``lag_seconds`` (age of the
oldest message not yet ingested, from its Kafka timestamp) and ``messages_per_second_in`` (end
offsets between two ticks, kept in the sensor cursor). Per table, runless check evaluations:
lag in messages and seconds against the table's thresholds, and retention loss when the
broker deleted messages the table has not ingested yet. The daemon writes these events to the
instance (``SensorResult.asset_events`` → ``report_runless_asset_event``); no run is launched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import orjson

from pipeline_platform.factory import naming
from pipeline_platform.monitoring import checks
from pipeline_platform.registry.document import TableConfig, Topic

if TYPE_CHECKING:  # the Kafka client is imported by the first tick, not at definitions load
    from pipeline_platform.ingestion.lag import PartitionLag

logger = logging.getLogger(__name__)

EVENT_TIME_TIMEOUT = 2.0
"""Most seconds a tick spends reading the oldest unconsumed message of each lagging partition."""


@dataclass(frozen=True)
class WatchedTable:
    """A table whose lag was read this tick."""

    key: dg.AssetKey
    topic: str
    table: TableConfig
    partitions: Mapping[int, PartitionLag]


@dataclass(frozen=True)
class TickReport:
    """The events of one tick and the cursor for the next."""

    events: list[dg.AssetObservation | dg.AssetCheckEvaluation]
    cursor: str


def lag_seconds(
    lags: Mapping[str, Mapping[int, PartitionLag]],
    kafka_config: Mapping[str, Any],
    timeout: float = EVENT_TIME_TIMEOUT,
    now: float | None = None,
) -> dict[str, float | None]:
    """Return topic → age in seconds of its oldest message not yet ingested.

    Only lagging partitions are read (one fetch at the stored offset each, one consumer for
    all); a topic without lag is 0 s behind; None where the message could not be read.
    """
    pending = {
        topic: {p: lag for p, lag in partitions.items() if lag.lag > 0}
        for topic, partitions in lags.items()
    }
    pending = {topic: partitions for topic, partitions in pending.items() if partitions}
    times = {}
    if pending:
        from pipeline_platform.monitoring.event_times import read_event_times

        try:
            times = read_event_times(pending, kafka_config, timeout)
        except Exception:
            logger.warning("Kafka timestamps not read; lag in seconds unknown", exc_info=True)
    moment = time.time() if now is None else now
    ages: dict[str, float | None] = {}
    for topic in lags:
        oldest = times[topic].oldest_pending if topic in times else None
        if topic not in pending:
            ages[topic] = 0.0
        elif oldest is not None:
            ages[topic] = round(max(0.0, moment - oldest), 3)
        else:
            ages[topic] = None
    return ages


def lag_seconds_after_run(
    topic: Topic, *, warehouse_url: str, kafka_config: Mapping[str, Any], lag_left: int
) -> float | None:
    """Return the lag in seconds of a table right after its run (0 when nothing is left).

    Reads the stored and end offsets again and the Kafka timestamp of the oldest message left,
    as a tick does; None when they cannot be read.
    """
    if lag_left <= 0:
        return 0.0
    from pipeline_platform.ingestion.lag import read_lag

    try:
        lags = read_lag(topic, warehouse_url=warehouse_url, kafka_config=dict(kafka_config))
    except Exception:
        logger.warning("Lag of %s not read after the run", topic.name, exc_info=True)
        return None
    return lag_seconds({topic.name: lags}, kafka_config).get(topic.name)


def _parse_cursor(cursor: str | None) -> tuple[float | None, dict[str, int]]:
    if not cursor:
        return None, {}
    try:
        data = orjson.loads(cursor)
        return float(data["at"]), {str(k): int(v) for k, v in data["ends"].items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, {}


def tick_report(
    watched: Sequence[WatchedTable],
    ages: Mapping[str, float | None],
    cursor: str | None,
    now: float | None = None,
) -> TickReport:
    """Return the observations and check evaluations of a tick, and the next cursor.

    Args:
        watched: The tables whose lag was read.
        ages: Topic → lag in seconds (from :func:`lag_seconds`).
        cursor: The previous tick's cursor (end offsets and when they were read).
        now: The time of this tick (seconds since the epoch; now by default).
    """
    moment = time.time() if now is None else now
    previous_at, previous_ends = _parse_cursor(cursor)
    events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
    ends: dict[str, int] = {}
    for table in watched:
        lag = sum(p.lag for p in table.partitions.values())
        end = sum(p.end for p in table.partitions.values())
        ends[table.topic] = end
        metadata: dict[str, Any] = {
            "lag_messages": lag,
            "lagging_partitions": sum(1 for p in table.partitions.values() if p.lag > 0),
            "end_offset_total": end,
        }
        age = ages.get(table.topic)
        if age is not None:
            metadata["lag_seconds"] = age
        before = previous_ends.get(table.topic)
        if previous_at is not None and before is not None and moment > previous_at:
            rate = max(0, end - before) / (moment - previous_at)
            metadata["messages_per_second_in"] = round(rate, 2)
        events.append(
            dg.AssetObservation(asset_key=naming.topic_key(table.topic), metadata=metadata)
        )
        events.extend(verdict.as_evaluation(table.key) for verdict in _verdicts(table, lag, age))
    return TickReport(events, orjson.dumps({"at": moment, "ends": ends}).decode())


def _verdicts(table: WatchedTable, lag: int, age: float | None) -> list[checks.Verdict]:
    found = [
        checks.lag_messages_verdict(table.table, lag),
        checks.lag_seconds_verdict(table.table, age),
    ]
    lost = {p: part.lost for p, part in table.partitions.items() if part.lost is not None}
    if lost:
        found.append(checks.retention_verdict(lost, pending=True))
    return [verdict for verdict in found if verdict is not None]
