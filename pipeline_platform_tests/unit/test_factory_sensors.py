"""Kafka lag sensor and registry reload sensor, driven through build_sensor_context."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import pytest

from pipeline_platform.factory import naming
from pipeline_platform.factory.builder import FactoryOptions, build_definitions
from pipeline_platform.factory.sensors import (
    LagSensorOptions,
    evaluate_lag,
    evaluate_reload,
    run_key_for,
)
from pipeline_platform.factory.snapshot import RegistrySnapshot
from pipeline_platform.factory.translator import RegistryTranslator, TableTarget
from pipeline_platform.registry.validation import load_document
from pipeline_platform.resources import KafkaResource, WarehouseResource

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


class Lag(NamedTuple):
    stored: int
    end: int


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
) -> dg.SensorResult:
    calls: list[dict[str, Any]] = []

    def read_lag(topic: Any, **kwargs: Any) -> Mapping[int, Lag]:
        calls.append({"topic": topic.name, **kwargs})
        if isinstance(lags, Exception):
            raise lags
        return lags.get(topic.name, {0: Lag(5, 5)})

    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = evaluate_lag(
        context,
        targets,
        warehouse=WarehouseResource(url="sqlite:///w.db"),
        kafka=KafkaResource(bootstrap_servers="broker:9092"),
        options=options or LagSensorOptions(max_messages_per_run=500),
        read_lag=read_lag,
        broker_unavailable=BrokerDown,
    )
    assert all(call["timeout"] > 0 for call in calls)
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
    observed = {e.asset_key.to_user_string(): e.metadata for e in result.asset_events}
    assert len(observed) == 3
    assert observed["kafka/device.network.wifi.raw"]["lag_messages"].value == 16
    assert observed["kafka/device.audio.raw"]["lag_messages"].value == 0


def test_run_key_changes_with_the_offset_range(targets) -> None:
    key = targets[0].key
    assert run_key_for(key, {0: Lag(0, 10)}) != run_key_for(key, {0: Lag(0, 11)})
    assert run_key_for(key, {0: Lag(0, 10)}) == run_key_for(key, {0: Lag(0, 10)})


def test_no_lag_skips_and_advances_cursor(instance, targets) -> None:
    result = _evaluate(instance, targets, {}, cursor="1")
    assert result.skip_reason is not None
    assert "No table lagging among 3 polled" in result.skip_reason.skip_message
    assert result.cursor == "1"


def test_tick_budget_resumes_round_robin(instance, targets) -> None:
    options = LagSensorOptions(tick_budget_seconds=0.0)
    result = _evaluate(instance, targets, {}, cursor="2", options=options)
    assert len(result.asset_events) == 1  # one table per tick with an exhausted budget
    assert result.cursor == "0"


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
