"""``GET /metrics``: OpenMetrics text from a collector that reads the shared state at scrape time.

One process, one custom collector over :class:`~pipeline_platform.monitoring.state.StateReader`
(the same state as ``/status``): no in-memory counters that other processes could not see.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.responses import Response

from pipeline_platform.api.security import require_read
from pipeline_platform.monitoring.state import StateReader

PREFIX = "pipeline_platform"
router = APIRouter(dependencies=[Depends(require_read)])


class StateCollector(Collector):
    """Turns the monitoring state into metric families on every scrape."""

    def __init__(self, state: StateReader) -> None:
        """Read ``state`` on each :meth:`collect`."""
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """Yield the families of spec §10 (see ``docs/api.md``)."""
        state = self.state.read()
        table = ["topic", "table", "data_source"]
        lag = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag_messages",
            "Messages not yet ingested, per table and partition",
            labels=[*table, "partition"],
        )
        lag_seconds = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag_seconds",
            "Age of the oldest message not yet ingested",
            labels=table,
        )
        last_event = GaugeMetricFamily(
            f"{PREFIX}_last_event_timestamp_seconds",
            "Kafka timestamp of the last ingested message",
            labels=table,
        )
        rows = CounterMetricFamily(
            f"{PREFIX}_rows_written", "Rows written into the table", labels=table
        )
        dead = CounterMetricFamily(
            f"{PREFIX}_dead_letters", "Dead letters by reason kind", labels=[*table, "reason"]
        )
        for t in state.tables:
            values = [t.topic, t.table, t.data_source]
            for partition, p in sorted(t.partitions.items()):
                lag.add_metric([*values, str(partition)], p.lag)
            if t.lag_seconds is not None:
                lag_seconds.add_metric(values, t.lag_seconds)
            if t.last_event_at is not None:
                last_event.add_metric(values, t.last_event_at.timestamp())
            if t.rows_written is not None:
                rows.add_metric(values, t.rows_written)
            for kind, count in sorted(t.dead_letters_total.items()):
                dead.add_metric([*values, kind], count)
        success = GaugeMetricFamily(
            f"{PREFIX}_last_run_success",
            "1 when the job's last finished run succeeded",
            labels=["job"],
        )
        run_time = GaugeMetricFamily(
            f"{PREFIX}_last_run_timestamp_seconds", "When the job's last run ended", labels=["job"]
        )
        for job, run in sorted(state.job_runs.items()):
            success.add_metric([job], 1.0 if run.status == "SUCCESS" else 0.0)
            if run.ended_at is not None:
                run_time.add_metric([job], run.ended_at.timestamp())
        revision = GaugeMetricFamily(f"{PREFIX}_registry_revision", "Registry revision loaded")
        if state.revision is not None:
            revision.add_metric([], state.revision)
        up = GaugeMetricFamily(f"{PREFIX}_registry_up", "1 when the registry database answers")
        up.add_metric([], 1.0 if state.registry_up else 0.0)
        yield from (lag, lag_seconds, last_event, rows, dead, success, run_time, revision, up)


def metrics_registry(state: StateReader) -> CollectorRegistry:
    """Return a registry holding only the state collector (no process or GC defaults)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state))
    return registry


@router.get("/metrics", summary="OpenMetrics exposition", response_class=Response)
def metrics(request: Request) -> Response:
    """The metric families of the shared state, in OpenMetrics text format."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
