"""The platform's monitoring state, read at once and cached a few seconds.

One :class:`StateReader` gathers, per ingested table: lag per partition (stored offsets vs broker
watermarks, one batched read through :func:`~pipeline_platform.ingestion.lag.read_lags`), lag in
seconds (Kafka timestamp of the oldest unconsumed message), the last event time (Kafka timestamp
of the last ingested message), rows written and the last run (Dagster instance), dead letters by
reason kind (warehouse state tables); plus the registry revision and fingerprint and the last
finished run of every job. ``/status``, ``/metrics`` and the monitoring checks read the same state,
so they always agree; nothing is counted in memory that another process could not see.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson

from pipeline_platform.config import Settings, environment
from pipeline_platform.ingestion.lag import PartitionLag, read_lags
from pipeline_platform.monitoring.dagster_state import DagsterReader, RunInfo
from pipeline_platform.monitoring.event_times import EventTimes, read_event_times
from pipeline_platform.monitoring.warehouse_stats import (
    TableStats,
    group_by_url,
    read_table_stats,
    warehouse_engine,
)
from pipeline_platform.registry.document import DEFAULT_DATA_SOURCE, RegistryDocument, Topic
from pipeline_platform.registry.live import LiveRegistry, RegistryUnavailable, one_line
from pipeline_platform.registry.rules import table_asset_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableState:
    """Monitoring figures of one ingested table; None where a source could not be read."""

    topic: str
    table: str
    data_source: str
    partitions: Mapping[int, PartitionLag] = field(default_factory=dict)
    lag_messages: int | None = None
    lag_seconds: float | None = None
    last_event_at: datetime | None = None
    rows_written: int | None = None
    dead_letters_24h: Mapping[str, int] = field(default_factory=dict)
    dead_letters_total: Mapping[str, int] = field(default_factory=dict)
    last_run: RunInfo | None = None

    @property
    def asset_key(self) -> str:
        """``<data_source>/<table>``."""
        return table_asset_name(self.data_source, self.table)

    def as_json(self) -> dict[str, Any]:
        """Return the ``/status`` row of this table (spec §10)."""
        return {
            "topic": self.topic,
            "table": self.table,
            "data_source": self.data_source,
            "lag_messages": self.lag_messages,
            "lag_seconds": self.lag_seconds,
            "last_event_at": _iso(self.last_event_at),
            "rows_written": self.rows_written,
            "dead_letters_24h": dict(sorted(self.dead_letters_24h.items())),
            "last_run": self.last_run.as_json() if self.last_run is not None else None,
        }


@dataclass(frozen=True)
class PlatformState:
    """Everything ``/status`` and ``/metrics`` report, read at ``read_at``."""

    revision: int | None
    fingerprint: str | None
    registry_up: bool
    tables: tuple[TableState, ...] = ()
    job_runs: Mapping[str, RunInfo] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @cached_property
    def status_body(self) -> bytes:
        """The ``/status`` body as JSON bytes, rendered once per state."""
        return orjson.dumps(self.as_json())

    def as_json(self) -> dict[str, Any]:
        """Return the ``/status`` body (spec §10)."""
        return {
            "registry": {
                "revision": self.revision,
                "fingerprint": self.fingerprint,
                "up": self.registry_up,
            },
            "tables": [table.as_json() for table in self.tables],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ingested(document: RegistryDocument) -> list[Topic]:
    return sorted(
        (t for t in document.topics if t.table is not None and t.active), key=lambda t: t.name
    )


class StateReader:
    """Reads :class:`PlatformState` at most every ``ttl`` seconds (one read at a time)."""

    def __init__(
        self,
        settings: Settings,
        registry: LiveRegistry,
        *,
        ttl: float = 5.0,
        dagster: Callable[[], DagsterReader | None] = DagsterReader.from_environment,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Keep the sources; nothing is read yet."""

        self.settings = settings
        self.registry = registry
        self.ttl = ttl
        self._env = environment(environ)
        self._dagster_factory = dagster
        self._dagster: DagsterReader | None = None
        self._engines: dict[str, Any] = {}
        self._state: PlatformState | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def read(self) -> PlatformState:
        """Return the state, read afresh when the cached one is older than ``ttl`` seconds.

        One caller refreshes at a time; while it does, the others get the previous state
        instead of waiting (only the very first read makes everyone wait).
        """
        state = self._state
        if state is not None and time.monotonic() - self._read_at < self.ttl:
            return state
        if state is not None and not self._lock.acquire(blocking=False):
            return state
        if state is None:
            self._lock.acquire()
        try:
            if self._state is None or time.monotonic() - self._read_at >= self.ttl:
                self._state = self._read()
                self._read_at = time.monotonic()
            return self._state
        finally:
            self._lock.release()

    def current(self) -> PlatformState | None:
        """Return the cached state without waiting (None before the first read).

        A stale state is still returned while one background thread reads a new one.
        """
        state = self._state
        stale = state is not None and time.monotonic() - self._read_at >= self.ttl
        if stale and self._lock.acquire(blocking=False):
            threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return state

    def _refresh_in_background(self) -> None:
        try:
            self._state = self._read()
        except Exception:
            logger.warning("Monitoring state read failed; serving the last one", exc_info=True)
        finally:
            self._read_at = time.monotonic()
            self._lock.release()

    def warehouse_url(self, data_source: str) -> str:
        """Return the URL of a data source: the warehouse setting or its ``url_env`` variable."""
        if data_source == DEFAULT_DATA_SOURCE:
            return self.settings.warehouse_url
        view = self.registry.view()
        for source in view.document.data_sources:
            if source.name == data_source and self._env.get(source.url_env):
                return self._env[source.url_env]
        raise KeyError(f"no URL for data source {data_source!r}")

    def _read(self) -> PlatformState:
        try:
            view = self.registry.view()
        except RegistryUnavailable as error:
            return PlatformState(None, None, False, errors=(str(error),))
        errors: list[str] = []
        topics = _ingested(view.document)
        keys = {
            t.name: table_asset_name(t.table.data_source, t.table.name) for t in topics if t.table
        }
        lags = self._lags(topics, errors)
        times = self._times(lags, errors)
        stats = self._stats(topics, errors)
        rows, runs, jobs = self._dagster_state(list(keys.values()), errors)
        now = time.time()
        tables: list[TableState] = []
        for topic in topics:
            assert topic.table is not None
            key = keys[topic.name]
            partitions = lags.get(topic.name)
            event = times.get(topic.name, EventTimes())
            lag = sum(p.lag for p in partitions.values()) if partitions is not None else None
            seconds: float | None = None
            if lag == 0:
                seconds = 0.0
            elif event.oldest_pending is not None:
                seconds = round(max(0.0, now - event.oldest_pending), 3)
            table_stats = stats.get(key, TableStats())
            last_event = event.last_ingested
            tables.append(
                TableState(
                    topic=topic.name,
                    table=topic.table.name,
                    data_source=topic.table.data_source,
                    partitions=partitions or {},
                    lag_messages=lag,
                    lag_seconds=seconds,
                    last_event_at=(
                        datetime.fromtimestamp(last_event, UTC) if last_event is not None else None
                    ),
                    rows_written=rows.get(key),
                    dead_letters_24h=table_stats.dead_letters_24h,
                    dead_letters_total=table_stats.dead_letters_total,
                    last_run=runs.get(key),
                )
            )
        return PlatformState(
            revision=view.revision,
            fingerprint=view.fingerprint,
            registry_up=True,
            tables=tuple(tables),
            job_runs=jobs,
            errors=tuple(errors),
        )

    def _lags(self, topics: list[Topic], errors: list[str]) -> dict[str, dict[int, PartitionLag]]:
        failed: dict[str, Exception] = {}
        try:
            lags = read_lags(
                topics,
                warehouse_urls=self.warehouse_url,
                kafka_config=self.settings.kafka_config(),
                timeout=3.0,
                errors=failed,
            )
        except Exception as error:
            errors.append(f"broker: {one_line(error)}")
            return {}
        errors.extend(f"lag of {name}: {one_line(e)}" for name, e in sorted(failed.items()))
        return lags

    def _times(
        self, lags: Mapping[str, Mapping[int, PartitionLag]], errors: list[str]
    ) -> dict[str, EventTimes]:
        try:
            return read_event_times(lags, self.settings.kafka_config())
        except Exception as error:
            errors.append(f"event times: {one_line(error)}")
            return {}

    def _stats(self, topics: list[Topic], errors: list[str]) -> dict[str, TableStats]:
        urls: dict[str, str] = {}
        for topic in topics:
            assert topic.table is not None
            try:
                key = table_asset_name(topic.table.data_source, topic.table.name)
                urls[key] = self.warehouse_url(topic.table.data_source)
            except KeyError as error:
                errors.append(one_line(error))
        stats: dict[str, TableStats] = {}
        for url, keys in group_by_url(urls).items():
            engine = self._engines.get(url)
            if engine is None:
                engine = self._engines[url] = warehouse_engine(url)
            try:
                stats.update(read_table_stats(engine, keys))
            except Exception as error:
                errors.append(f"warehouse: {one_line(error)}")
        return stats

    def _dagster_state(
        self, keys: list[str], errors: list[str]
    ) -> tuple[dict[str, int], dict[str, RunInfo], dict[str, RunInfo]]:
        try:
            if self._dagster is None:
                self._dagster = self._dagster_factory()
            if self._dagster is None:
                return {}, {}, {}
            reader = self._dagster
            return (
                reader.rows_written(keys),
                reader.last_runs_by_asset(keys),
                reader.last_runs_by_job(),
            )
        except Exception as error:
            errors.append(f"dagster: {one_line(error)}")
            return {}, {}, {}

    def close(self) -> None:
        """Dispose of the warehouse engines."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
