"""Sensors: Kafka lag → ingestion runs, and registry revision → code location reload.

Both sensors keep a tick short: every external call has a timeout, and the Kafka sensor reads the
lag of all its tables with a constant number of round trips per tick (one offsets query per
warehouse, one metadata request, batched ListOffsets), so a tick does not grow with tables.
"""

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dagster as dg

from pipeline_platform.config import DEFAULT_LOCATION_NAME, DEFAULTS, read_environment
from pipeline_platform.factory import naming
from pipeline_platform.factory.packing import (
    LaggingTable,
    in_flight_tables,
    plan_runs,
    run_request,
)
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.monitoring.tick import (
    EVENT_TIME_TIMEOUT,
    WatchedTable,
    lag_seconds,
    tick_report,
)
from pipeline_platform.resources import KafkaResource, RegistryResource, WarehouseResource


class ReadLagsFn(Protocol):
    """The batched lag reader (the service's ``read_lags``)."""

    def __call__(
        self,
        topics: Sequence[Any],
        *,
        warehouse_urls: Mapping[str, str] | Callable[[str], str],
        kafka_config: Mapping[str, Any],
        timeout: float = 5.0,
        errors: dict[str, Exception] | None = None,
    ) -> Mapping[str, Mapping[int, Any]]:
        """Return topic → partition → lag; failures per topic go to ``errors``."""
        ...


@dataclass(frozen=True)
class LagSensorOptions:
    """How the Kafka lag sensor polls and what it asks for.

    Attributes:
        interval_seconds: Minimum seconds between ticks.
        lag_timeout_seconds: Broker timeout of the one batched lag read of a tick.
        min_lag_messages: Lag (messages) from which a table gets a run.
        max_messages_per_run: Cap on messages per table per run (run config).
        max_runs_per_tick: Most run requests per tick.
        max_tables_per_run: Most tables sharing one run (1 = a run per table).
        max_messages_per_packed_run: Message budget of a shared run; a table lagging by at
            least this many messages gets a run of its own.
    """

    interval_seconds: int = DEFAULTS.kafka_sensor_interval
    lag_timeout_seconds: float = 5.0
    min_lag_messages: int = 1
    max_messages_per_run: int | None = DEFAULTS.ingest_max_messages
    max_runs_per_tick: int = DEFAULTS.kafka_sensor_max_runs
    max_tables_per_run: int = DEFAULTS.ingest_run_max_tables
    max_messages_per_packed_run: int = DEFAULTS.ingest_run_max_messages


def shard_of(key: dg.AssetKey, shards: int) -> int:
    """Return the stable shard (0-based) of a table key among ``shards`` sensors."""
    digest = hashlib.blake2b(key.to_user_string().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(shards, 1)


def evaluate_lag(
    context: dg.SensorEvaluationContext,
    targets: Sequence[TableTarget],
    *,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    options: LagSensorOptions,
    read_lags: ReadLagsFn | None = None,
    broker_unavailable: type[Exception] | None = None,
    read_ages: Callable[..., Mapping[str, float | None]] = lag_seconds,
) -> dg.SensorResult:
    """One tick of a Kafka lag sensor.

    Reads the lag of every active table's topic (stored offset → end offset per partition) in
    one batched call, observes it on the topic asset (with the lag in seconds and the produce
    rate), reports the lag and retention checks of every table without a run
    (``pipeline_platform.monitoring.tick``) and requests at most ``options.max_runs_per_tick``
    ingestion runs for the lagging tables that are in no run in flight, small ones packed
    together (:mod:`~pipeline_platform.factory.packing`). Stops with a ``SkipReason`` naming
    the brokers when they are unreachable.

    Args:
        context: The sensor context.
        targets: The tables this sensor watches.
        warehouse: Where stored offsets are kept.
        kafka: The brokers.
        options: Polling limits.
        read_lags: The batched lag reader; the ingestion service's ``read_lags`` by default.
        broker_unavailable: The exception ``read_lags`` raises when brokers are down.
        read_ages: Reads topic → lag in seconds (Kafka timestamps of the oldest pending).

    Returns:
        Run requests, or a skip reason, with the observations, check evaluations and cursor.
    """
    if read_lags is None or broker_unavailable is None:
        from pipeline_platform.ingestion import service

        read_lags = read_lags or service.read_lags
        broker_unavailable = broker_unavailable or service.BrokerUnavailable
    if not targets:
        return dg.SensorResult(skip_reason=dg.SkipReason("No ingested tables in the registry"))
    active = [target for target in targets if target.topic.active]
    failures: dict[str, Exception] = {}
    urls = _warehouse_urls(warehouse, active, failures)
    in_flight = in_flight_tables(context.instance, targets)
    try:
        lags = read_lags(
            [target.topic for target in active if target.topic.name not in failures],
            warehouse_urls=urls,
            kafka_config=kafka.client_config(),
            timeout=options.lag_timeout_seconds,
            errors=failures,
        )
    except broker_unavailable as error:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"Kafka brokers {kafka.describe()} unreachable ({error}); no lag read, "
                "no run requested. Retrying on the next tick."
            )
        )
    lagging: list[LaggingTable] = []
    watched: list[WatchedTable] = []
    waiting = 0  # lagging tables already in a queued or running run
    errors: list[str] = []
    for target in active:
        failure = failures.get(target.topic.name)
        if failure is not None:
            errors.append(f"{target.key.to_user_string()}: {type(failure).__name__}: {failure}")
            continue
        lag = lags.get(target.topic.name, {})
        watched.append(WatchedTable(target.key, target.topic.name, target.table, lag))
        total = sum(max(0, p.end - p.stored) for p in lag.values())
        if total >= options.min_lag_messages:
            if target.key.to_user_string() in in_flight:
                waiting += 1
            else:
                lagging.append(LaggingTable(target, lag, total))
    timeout = min(options.lag_timeout_seconds, EVENT_TIME_TIMEOUT)
    ages = read_ages({t.topic: t.partitions for t in watched}, kafka.client_config(), timeout)
    report = tick_report(watched, ages, context.cursor)
    observations = report.events
    for error_text in errors:
        context.log.warning(f"Lag not read for {error_text}")
    runs = plan_runs(
        lagging,
        max_runs=options.max_runs_per_tick,
        max_tables=options.max_tables_per_run,
        max_messages=options.max_messages_per_packed_run,
    )
    requests = [run_request(run, options.max_messages_per_run) for run in runs]
    if requests:
        return dg.SensorResult(
            run_requests=requests, asset_events=observations, cursor=report.cursor
        )
    reason = f"No table lagging among {len(targets)} polled"
    if waiting:
        reason = f"{waiting} lagging table(s) of {len(targets)} already in a run in flight"
    if errors:
        reason += f"; lag not read for {len(errors)} table(s): {errors[0]}"
    return dg.SensorResult(
        skip_reason=dg.SkipReason(reason), asset_events=observations, cursor=report.cursor
    )


def _warehouse_urls(
    warehouse: WarehouseResource,
    targets: Sequence[TableTarget],
    failures: dict[str, Exception],
) -> dict[str, str]:
    """Return data source name → URL once per data source; failures go by topic name."""
    urls: dict[str, str] = {}
    broken: dict[str, Exception] = {}
    for target in targets:
        name = target.table.data_source
        if name not in urls and name not in broken:
            try:
                urls[name] = warehouse.url_for(name, target.data_source)
            except Exception as error:
                broken[name] = error
        if name in broken:
            failures[target.topic.name] = broken[name]
    return urls


def build_kafka_sensors(
    targets: Sequence[TableTarget],
    *,
    shards: int,
    running: bool,
    options: LagSensorOptions,
) -> list[dg.SensorDefinition]:
    """Return the Kafka lag sensors: ``shards`` of them, tables split by a stable hash.

    Args:
        targets: Every ingested table.
        shards: Number of sensors (fixed; it does not grow with tables).
        running: Whether the sensors start RUNNING by default.
        options: Polling limits.

    Returns:
        The sensors, targeting the shared ingestion job.
    """
    shards = max(1, shards)
    groups: list[list[TableTarget]] = [[] for _ in range(shards)]
    for target in targets:
        groups[shard_of(target.key, shards)].append(target)
    status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    return [
        _kafka_sensor(naming.kafka_sensor_name(i + 1, shards), group, status, options)
        for i, group in enumerate(groups)
    ]


def _kafka_sensor(
    name: str,
    targets: Sequence[TableTarget],
    status: dg.DefaultSensorStatus,
    options: LagSensorOptions,
) -> dg.SensorDefinition:
    watched = tuple(targets)

    @dg.sensor(
        name=name,
        job_name=naming.INGESTION_JOB_NAME,
        minimum_interval_seconds=options.interval_seconds,
        default_status=status,
        description=(
            f"Polls the Kafka lag of {len(watched)} table(s) and launches ingestion runs for "
            "lagging tables; observes lag per topic."
        ),
    )
    def kafka_lag_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, kafka: KafkaResource
    ) -> dg.SensorResult:
        return evaluate_lag(context, watched, warehouse=warehouse, kafka=kafka, options=options)

    return kafka_lag_sensor


# -- hot reload -------------------------------------------------------------------------------


def reload_code_location(location_name: str, environ: Mapping[str, str] | None = None) -> str:
    """Ask the webserver to reload a code location (GraphQL ``reloadRepositoryLocation``).

    Args:
        location_name: The code location to reload.
        environ: Environment giving the webserver host and port (read now, not at load).

    Returns:
        A short description of the outcome.

    Raises:
        RuntimeError: When the webserver refuses or cannot be reached.
    """
    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

    values = read_environment(environ)
    host, port = values.webserver_host, values.webserver_port
    client = DagsterGraphQLClient(host, port_number=port, timeout=30)
    info = client.reload_repository_location(location_name)
    if info.status != ReloadRepositoryLocationStatus.SUCCESS:
        raise RuntimeError(f"{info.failure_type}: {info.message}")
    return f"reloaded code location {location_name!r} through {host}:{port}"


def evaluate_reload(
    context: dg.SensorEvaluationContext,
    loaded_revision: str | None,
    read_revision: Callable[[], str],
    reload: Callable[[str], str] = reload_code_location,
) -> dg.SensorResult:
    """One tick of the registry reload sensor.

    Reloads the code location when the registry revision differs both from the revision these
    definitions were built from and from the last revision a reload was requested for (cursor).

    Args:
        context: The sensor context; its cursor is the last revision seen.
        loaded_revision: Revision of the loaded snapshot (None after a fallback load, so that
            the first successful read reloads).
        read_revision: Returns the current registry revision (cheap query).
        reload: Reloads a code location by name.

    Returns:
        A skip reason describing what happened, with the new cursor.
    """
    try:
        current = read_revision()
    except Exception as error:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"Registry unreachable: {type(error).__name__}: {error}")
        )
    last_seen = context.cursor or loaded_revision
    if current == loaded_revision or current == context.cursor:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"Registry revision {current} unchanged"), cursor=current
        )
    origin = context.code_location_origin
    location = (
        origin.location_name
        if origin is not None
        else read_environment().location_name or DEFAULT_LOCATION_NAME
    )
    try:
        outcome = reload(location)
    except Exception as error:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"Registry revision {last_seen} → {current} but reload of {location!r} "
                f"failed ({type(error).__name__}: {error}); retrying on the next tick"
            ),
            cursor=context.cursor,
        )
    return dg.SensorResult(
        skip_reason=dg.SkipReason(f"Registry revision {last_seen} → {current}: {outcome}"),
        cursor=current,
    )


def build_reload_sensor(
    loaded_revision: str | None,
    *,
    read_revision: Callable[[str], str],
    running: bool,
    interval_seconds: int = 10,
) -> dg.SensorDefinition:
    """Return the sensor that reloads the code location when the registry changes.

    Args:
        loaded_revision: Revision of the snapshot these definitions were built from.
        read_revision: Returns the current revision given the registry URL.
        running: Whether the sensor starts RUNNING by default.
        interval_seconds: Minimum seconds between ticks.

    Returns:
        The sensor (it launches no runs).
    """

    @dg.sensor(
        name=naming.RELOAD_SENSOR_NAME,
        minimum_interval_seconds=interval_seconds,
        default_status=(
            dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
        ),
        description="Reloads this code location when the registry revision changes.",
    )
    def registry_reload_sensor(
        context: dg.SensorEvaluationContext, registry: RegistryResource
    ) -> dg.SensorResult:
        return evaluate_reload(
            context, loaded_revision, lambda: read_revision(registry.resolved_url())
        )

    return registry_reload_sensor
