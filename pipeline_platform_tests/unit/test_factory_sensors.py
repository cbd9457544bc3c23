"""Kafka lag sensor and registry reload sensor, driven through build_sensor_context."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest

from pipeline_platform.factory import naming
from pipeline_platform.factory.builder import FactoryOptions, build_definitions
from pipeline_platform.factory.packing import run_key_for
from pipeline_platform.factory.sensors import LagSensorOptions, evaluate_lag, evaluate_reload
from pipeline_platform.factory.snapshot import RegistrySnapshot
from pipeline_platform.factory.translator import RegistryTranslator, TableTarget
from pipeline_platform.ingestion.lag import PartitionLag
from pipeline_platform.registry.validation import load_document
from pipeline_platform.resources import KafkaResource, WarehouseResource

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


Lag = PartitionLag


class BrokerDown(Exception):
    pass


@pytest.fixture(scope="module")
def targets() -> tuple[TableTarget, ...]:
    return RegistryTranslator().translate(load_document(FIXTURE)).tables


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as instance:
        yield instance


def _evaluate(
    instance: dg.DagsterInstance,
    targets: tuple[TableTarget, ...],
    lags: Mapping[str, Mapping[int, Lag]] | Exception,
    cursor: str | None = None,
    options: LagSensorOptions | None = None,
    failures: Mapping[str, Exception] | None = None,
    calls: list[dict[str, Any]] | None = None,
) -> dg.SensorResult:
    seen: list[dict[str, Any]] = [] if calls is None else calls

    def read_lags(topics: Any, **kwargs: Any) -> Mapping[str, Mapping[int, Lag]]:
        seen.append({"topics": [t.name for t in topics], **kwargs})
        if isinstance(lags, Exception):
            raise lags
        kwargs["errors"].update(failures or {})
        return {
            t.name: lags.get(t.name, {0: Lag(5, 5)})
            for t in topics
            if t.name not in kwargs["errors"]
        }

    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = evaluate_lag(
        context,
        targets,
        warehouse=WarehouseResource(url="sqlite:///w.db"),
        kafka=KafkaResource(bootstrap_servers="broker:9092"),
        options=options or LagSensorOptions(max_messages_per_run=500),
        read_lags=read_lags,
        broker_unavailable=BrokerDown,
        read_ages=lambda lags, *args: dict.fromkeys(lags, 42.0),
    )
    assert len(seen) == 1  # one batched read per tick, whatever the number of tables
    assert all(call["timeout"] > 0 for call in seen)
    return result


def test_broker_down_gives_a_skip_reason(instance, targets) -> None:
    result = _evaluate(instance, targets, BrokerDown("connection refused"))
    assert result.run_requests in (None, [])
    assert result.skip_reason is not None
    assert "broker:9092 unreachable" in result.skip_reason.skip_message
    assert "connection refused" in result.skip_reason.skip_message


def test_lagging_tables_get_runs_with_offset_run_keys(instance, targets) -> None:
    lags = {"device.network.wifi.raw": {0: Lag(10, 25), 1: Lag(0, 0), 2: Lag(3, 4)}}
    result = _evaluate(instance, targets, lags)
    assert result.run_requests is not None
    [request] = result.run_requests
    key = dg.AssetKey(["warehouse", "device_network_wifi_raw"])
    assert request.asset_selection == [key]
    assert request.job_name == naming.INGESTION_JOB_NAME
    assert request.run_key == run_key_for(key, lags["device.network.wifi.raw"])
    assert request.run_key.startswith("warehouse/device_network_wifi_raw@")
    assert request.tags[naming.TABLE_TAG] == "warehouse/device_network_wifi_raw"
    assert request.run_config == {
        "ops": {naming.INGESTION_OP_NAME: {"config": {"max_messages": 500}}}
    }
    observed = {
        e.asset_key.to_user_string(): e.metadata
        for e in result.asset_events
        if isinstance(e, dg.AssetObservation)
    }
    assert len(observed) == 3
    assert observed["kafka/device.network.wifi.raw"]["lag_messages"].value == 16
    assert observed["kafka/device.audio.raw"]["lag_messages"].value == 0


def test_run_key_changes_with_the_offset_range(targets) -> None:
    key = targets[0].key
    assert run_key_for(key, {0: Lag(0, 10)}) != run_key_for(key, {0: Lag(0, 11)})
    assert run_key_for(key, {0: Lag(0, 10)}) == run_key_for(key, {0: Lag(0, 10)})


def test_no_lag_skips(instance, targets) -> None:
    result = _evaluate(instance, targets, {}, cursor="1")
    assert result.skip_reason is not None
    assert "No table lagging among 3 polled" in result.skip_reason.skip_message
    assert sum(isinstance(e, dg.AssetObservation) for e in result.asset_events) == 3


def test_one_batched_read_for_all_tables_grouped_by_data_source(instance, targets) -> None:
    calls: list[dict[str, Any]] = []
    _evaluate(instance, targets, {}, calls=calls)
    [call] = calls
    assert sorted(call["topics"]) == sorted(t.topic.name for t in targets)
    assert call["warehouse_urls"] == {"warehouse": "sqlite:///w.db"}
    assert call["kafka_config"]["bootstrap.servers"] == "broker:9092"


def test_per_table_failures_are_reported_and_others_still_run(instance, targets) -> None:
    lags = {"device.network.wifi.raw": {0: Lag(0, 7)}}
    failures = {"device.audio.raw": RuntimeError("offsets table unreadable")}
    result = _evaluate(instance, targets, lags, failures=failures)
    [request] = result.run_requests
    assert request.tags[naming.TOPIC_TAG] == "device.network.wifi.raw"
    observed = {
        e.asset_key.to_user_string()
        for e in result.asset_events
        if isinstance(e, dg.AssetObservation)
    }
    assert "kafka/device.audio.raw" not in observed
    assert len(observed) == 2
    no_lag = _evaluate(instance, targets, {}, failures=failures)
    message = no_lag.skip_reason.skip_message
    assert "lag not read for 1 table(s)" in message
    assert "RuntimeError: offsets table unreadable" in message


def test_inactive_topics_and_in_flight_tables_get_no_run(instance, targets) -> None:
    wifi = next(t for t in targets if t.topic.name == "device.network.wifi.raw")
    inactive = dataclasses.replace(wifi, topic=wifi.topic.model_copy(update={"active": False}))
    others = tuple(t for t in targets if t is not wifi)
    calls: list[dict[str, Any]] = []
    lags = {t.topic.name: {0: Lag(0, 3)} for t in targets}
    result = _evaluate(instance, (inactive, *others), lags, calls=calls)
    assert "device.network.wifi.raw" not in calls[0]["topics"]
    [packed] = result.run_requests  # two small tables share one run
    assert set(packed.asset_selection) == {t.key for t in others}
    assert packed.tags[naming.INGESTION_TAG] == "packed"
    assert packed.tags[naming.TABLES_TAG] == ",".join(
        sorted(t.key.to_user_string() for t in others)
    )
    busy = others[0]
    instance.add_run(
        dg.DagsterRun(
            job_name=naming.INGESTION_JOB_NAME,
            run_id="busy",
            status=dg.DagsterRunStatus.STARTED,
            tags={naming.TABLE_TAG: busy.key.to_user_string()},
        )
    )
    again = _evaluate(instance, targets, lags)
    [request] = again.run_requests
    assert busy.key not in request.asset_selection
    assert len(request.asset_selection) == 2


def test_unknown_data_source_is_a_per_table_failure(instance, targets) -> None:
    wifi = next(t for t in targets if t.topic.name == "device.network.wifi.raw")
    table = wifi.table.model_copy(update={"data_source": "elsewhere"})
    topic = wifi.topic.model_copy(update={"table": table})
    moved = dataclasses.replace(wifi, topic=topic, table=table, data_source=None)
    others = tuple(t for t in targets if t is not wifi)
    calls: list[dict[str, Any]] = []
    result = _evaluate(instance, (moved, *others), {}, calls=calls)
    assert "device.network.wifi.raw" not in calls[0]["topics"]
    assert "Data source 'elsewhere' is not in the registry" in result.skip_reason.skip_message


def test_sensor_definition_runs_with_definitions(instance, targets) -> None:
    """The sensor as Dagster calls it: resources injected from the Definitions."""
    snapshot = RegistrySnapshot(load_document(FIXTURE), revision="7", origin="registry")
    defs = build_definitions(snapshot, options=FactoryOptions(), environ={})
    sensor = defs.resolve_sensor_def(naming.KAFKA_SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    context = dg.build_sensor_context(instance=instance, resources=defs.resources)
    import pipeline_platform.factory.sensors as sensors_module

    def fake_evaluate(context, targets, **kwargs):  # type: ignore[no-untyped-def]
        assert kwargs["kafka"].describe() == "localhost:9092"
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(targets)} tables"))

    original = sensors_module.evaluate_lag
    sensors_module.evaluate_lag = fake_evaluate
    try:
        result = sensor(context)
    finally:
        sensors_module.evaluate_lag = original
    assert result.skip_reason.skip_message == "3 tables"


def test_sensor_default_status_from_environment() -> None:
    snapshot = RegistrySnapshot(load_document(FIXTURE), revision="7", origin="registry")
    env = {"PIPELINE_KAFKA_SENSOR_RUNNING": "true", "PIPELINE_RELOAD_SENSOR_RUNNING": "0"}
    defs = build_definitions(snapshot, environ=env)
    kafka = defs.resolve_sensor_def(naming.KAFKA_SENSOR_NAME)
    reload = defs.resolve_sensor_def(naming.RELOAD_SENSOR_NAME)
    assert kafka.default_status == dg.DefaultSensorStatus.RUNNING
    assert reload.default_status == dg.DefaultSensorStatus.STOPPED


def test_sensor_limits_from_environment() -> None:
    env = {
        "PIPELINE_KAFKA_SENSOR_MAX_RUNS": "8",
        "PIPELINE_KAFKA_SENSOR_INTERVAL": "10",
        "PIPELINE_INGEST_MAX_MESSAGES": "500",
    }
    lag = FactoryOptions.from_env(env).lag
    assert (lag.max_runs_per_tick, lag.interval_seconds, lag.max_messages_per_run) == (8, 10, 500)
    assert FactoryOptions.from_env({}).lag == LagSensorOptions()


# -- reload sensor ------------------------------------------------------------------------------


def test_reload_sensor_skips_when_revision_unchanged() -> None:
    reloaded: list[str] = []
    context = dg.build_sensor_context()
    result = evaluate_reload(context, "4", lambda: "4", reloaded.append)
    assert reloaded == []
    assert result.cursor == "4"
    assert "unchanged" in result.skip_reason.skip_message


def test_reload_sensor_reloads_once_per_new_revision(monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_DAGSTER_LOCATION_NAME", "my_location")
    reloaded: list[str] = []

    def reload(name: str) -> str:
        reloaded.append(name)
        return "done"

    result = evaluate_reload(dg.build_sensor_context(), "4", lambda: "5", reload)
    assert reloaded == ["my_location"]
    assert result.cursor == "5"
    assert "4 → 5: done" in result.skip_reason.skip_message
    # Next tick, still on the old code (reload pending): no second reload.
    evaluate_reload(dg.build_sensor_context(cursor="5"), "4", lambda: "5", reload)
    assert reloaded == ["my_location"]


def test_reload_failure_is_retried() -> None:
    def reload(name: str) -> str:
        raise ConnectionError("webserver down")

    result = evaluate_reload(dg.build_sensor_context(cursor="4"), "4", lambda: "6", reload)
    assert result.cursor == "4"
    assert "webserver down" in result.skip_reason.skip_message


def test_registry_unreachable_in_reload_sensor() -> None:
    def read() -> str:
        raise OSError("no route")

    result = evaluate_reload(dg.build_sensor_context(), "4", read, lambda n: "x")
    assert "Registry unreachable" in result.skip_reason.skip_message


def test_reload_url_read_at_tick_time(monkeypatch) -> None:
    from pipeline_platform.factory import sensors

    seen: dict[str, Any] = {}

    class FakeClient:
        def __init__(self, host: str, port_number: int, timeout: int) -> None:
            seen.update(host=host, port=port_number)

        def reload_repository_location(self, name: str) -> Any:
            from dagster_graphql import ReloadRepositoryLocationInfo, ReloadRepositoryLocationStatus

            seen["name"] = name
            return ReloadRepositoryLocationInfo(status=ReloadRepositoryLocationStatus.SUCCESS)

    monkeypatch.setattr("dagster_graphql.DagsterGraphQLClient", FakeClient)
    env = {"PIPELINE_DAGSTER_WEBSERVER_HOST": "web", "PIPELINE_DAGSTER_WEBSERVER_PORT": "3100"}
    assert "web:3100" in sensors.reload_code_location("loc", env)
    assert seen == {"host": "web", "port": 3100, "name": "loc"}


def _checks(result: dg.SensorResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.asset_events
        if isinstance(e, dg.AssetCheckEvaluation)
    }


@pytest.mark.parametrize(
    ("lag", "passed", "severity"),
    [
        (50_000, True, dg.AssetCheckSeverity.WARN),  # at half of 100000: still passing
        (50_001, False, dg.AssetCheckSeverity.WARN),
        (100_001, False, dg.AssetCheckSeverity.ERROR),
    ],
)
def test_each_tick_evaluates_the_lag_check_without_a_run(
    instance, targets, lag: int, passed: bool, severity: dg.AssetCheckSeverity
) -> None:
    lags = {"device.network.wifi.raw": {0: Lag(0, lag)}}
    result = _evaluate(instance, targets, lags)
    check = _checks(result)[("warehouse/device_network_wifi_raw", "max_lag_messages")]
    assert (check.passed, check.severity) == (passed, severity)
    assert check.metadata["lag_messages"].value == lag
    # Tables without a lag threshold get no lag check; nothing was lost, no retention verdict.
    assert set(_checks(result)) == {("warehouse/device_network_wifi_raw", "max_lag_messages")}


def test_tick_reports_lag_seconds_rate_and_pending_retention_loss(instance, targets) -> None:
    wifi = next(t for t in targets if t.topic.name == "device.network.wifi.raw")
    table = wifi.table.model_copy(update={"max_lag_seconds": 60})
    watched = (dataclasses.replace(wifi, table=table),)
    lags = {"device.network.wifi.raw": {0: Lag(120, 130, lost_from=100), 1: Lag(0, 0)}}
    first = _evaluate(instance, watched, lags)
    checks = _checks(first)
    seconds = checks[("warehouse/device_network_wifi_raw", "max_lag_seconds")]
    assert (seconds.passed, seconds.severity) == (False, dg.AssetCheckSeverity.WARN)  # 42 > 30
    lost = checks[("warehouse/device_network_wifi_raw", "retention_loss")]
    assert (lost.passed, lost.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "partition 0: offsets 100..119" in (lost.description or "")
    assert lost.metadata["messages_lost_to_retention"].value == 20
    [observation] = [e for e in first.asset_events if isinstance(e, dg.AssetObservation)]
    assert observation.metadata["lag_seconds"].value == 42.0
    assert "messages_per_second_in" not in observation.metadata  # no previous tick yet
    assert first.cursor is not None
    cursor = orjson.loads(first.cursor)
    cursor["at"] -= 10  # the previous tick 10 s ago, 30 messages fewer at the end
    cursor["ends"]["device.network.wifi.raw"] -= 30
    second = _evaluate(instance, watched, lags, cursor=orjson.dumps(cursor).decode())
    [observation] = [e for e in second.asset_events if isinstance(e, dg.AssetObservation)]
    assert 2.9 < observation.metadata["messages_per_second_in"].value <= 3.0
