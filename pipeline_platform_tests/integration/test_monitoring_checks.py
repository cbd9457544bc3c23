"""The monitoring checks on real data: mock broker over TCP, real PostgreSQL, real Dagster.

Sensor ticks are driven through ``build_sensor_context`` and their events written to the
instance as the sensor daemon does (``report_runless_asset_event``); ingestion runs execute the
real ingestion assets in process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import orjson
import pytest
from confluent_kafka import Producer

from pipeline_platform.factory.assets import build_ingestion_assets
from pipeline_platform.factory.sensors import LagSensorOptions, build_kafka_sensors
from pipeline_platform.factory.translator import RegistryTranslator, TranslatedRegistry
from pipeline_platform.registry.document import RegistryDocument, Topic
from pipeline_platform.resources import KafkaResource, WarehouseResource
from pipeline_platform_tests.kafka import produce

OPTIONS = LagSensorOptions(lag_timeout_seconds=5.0, min_lag_messages=10**9)  # no run requests
ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN


def make_topic(**table: Any) -> Topic:
    suffix = uuid.uuid4().hex[:8]
    return Topic.model_validate(
        {
            "name": f"test.checks.{suffix}",
            "table": {
                "name": f"c_{suffix}",
                "mappings": [
                    {"source": "id", "column": "id", "type": "integer", "required": True},
                    {"source": "v", "column": "v", "type": "string"},
                ],
                **table,
            },
        }
    )


def translate(*topics: Topic) -> TranslatedRegistry:
    return RegistryTranslator().translate(RegistryDocument(topics=topics))


def fill(bootstrap: str, topic: Topic, count: int, partition: int = 0, size: int = 10) -> None:
    value = "x" * size
    messages = [(partition, None, orjson.dumps({"id": i, "v": value})) for i in range(count)]
    produce(bootstrap, topic.name, messages)


def resources(postgres_url: str, bootstrap: str) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(url=postgres_url),
        "kafka": KafkaResource(bootstrap_servers=bootstrap),
    }


def tick(
    translated: TranslatedRegistry,
    instance: dg.DagsterInstance,
    postgres_url: str,
    bootstrap: str,
    cursor: str | None = None,
) -> dg.SensorResult:
    """One sensor tick; its events are stored as the daemon stores them."""
    [sensor] = build_kafka_sensors(translated.tables, shards=1, running=False, options=OPTIONS)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources(postgres_url, bootstrap)
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def latest(instance: dg.DagsterInstance, key: dg.AssetKey, name: str) -> tuple[bool, Any]:
    """The stored outcome of a check's latest evaluation: (passed, severity)."""
    check_key = dg.AssetCheckKey(key, name)
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])
    entry = records[check_key].event
    assert entry is not None and entry.dagster_event is not None
    evaluation = entry.dagster_event.event_specific_data
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    return evaluation.passed, evaluation.severity


def ingest(
    translated: TranslatedRegistry,
    instance: dg.DagsterInstance,
    postgres_url: str,
    bootstrap: str,
) -> dg.ExecuteInProcessResult:
    assets = build_ingestion_assets(
        translated.tables, translated.table_specs, translated.table_checks
    )
    return dg.materialize(
        assets,
        instance=instance,
        resources=resources(postgres_url, bootstrap),
        raise_on_error=False,
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def test_lag_check_passes_warns_and_errors_on_ticks_without_runs(
    kafka_bootstrap: str, postgres_url: str, instance: dg.DagsterInstance
) -> None:
    topic = make_topic(max_lag_messages=10)
    translated = translate(topic)
    key = translated.tables[0].key
    fill(kafka_bootstrap, topic, 5)
    first = tick(translated, instance, postgres_url, kafka_bootstrap)
    assert latest(instance, key, "max_lag_messages") == (True, WARN)
    fill(kafka_bootstrap, topic, 1)
    tick(translated, instance, postgres_url, kafka_bootstrap, first.cursor)
    assert latest(instance, key, "max_lag_messages") == (False, WARN)
    fill(kafka_bootstrap, topic, 5)
    third = tick(translated, instance, postgres_url, kafka_bootstrap, first.cursor)
    assert latest(instance, key, "max_lag_messages") == (False, ERROR)
    assert instance.get_runs() == []  # red with no run
    [observation] = [e for e in third.asset_events if isinstance(e, dg.AssetObservation)]
    assert observation.metadata["lag_messages"].value == 11
    assert observation.metadata["messages_per_second_in"].value > 0  # 6 more since the first

    result = ingest(translated, instance, postgres_url, kafka_bootstrap)
    assert result.success
    assert latest(instance, key, "max_lag_messages") == (True, WARN)
    [materialization] = result.asset_materializations_for_node("ingest_tables")
    assert materialization.metadata["lag_left"].value == 0
    assert materialization.metadata["messages_lost_to_retention"].value == 0
    assert latest(instance, key, "rows_growing") == (True, WARN)
    assert latest(instance, key, "retention_loss")[0] is True


@pytest.mark.parametrize(
    ("limit", "expected"), [(600, (True, WARN)), (150, (False, WARN)), (60, (False, ERROR))]
)
def test_lag_seconds_from_the_kafka_timestamp_of_the_oldest_pending_message(
    kafka_bootstrap: str,
    postgres_url: str,
    instance: dg.DagsterInstance,
    limit: int,
    expected: tuple[bool, Any],
) -> None:
    topic = make_topic(max_lag_seconds=limit)
    translated = translate(topic)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    old = int((time.time() - 100) * 1000)  # produced with a timestamp 100 s ago
    producer.produce(topic.name, orjson.dumps({"id": 1, "v": "a"}), partition=1, timestamp=old)
    producer.produce(topic.name, orjson.dumps({"id": 2, "v": "b"}), partition=1)
    assert producer.flush(10) == 0
    result = tick(translated, instance, postgres_url, kafka_bootstrap)
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    assert 99 <= observation.metadata["lag_seconds"].value < 130
    key = translated.tables[0].key
    assert latest(instance, key, "max_lag_seconds") == expected
    # The run ingests both messages: nothing is left, 0 s behind.
    assert ingest(translated, instance, postgres_url, kafka_bootstrap).success
    assert latest(instance, key, "max_lag_seconds") == (True, WARN)


@pytest.mark.parametrize(
    ("bad", "expected"), [(1, (True, WARN)), (2, (False, WARN)), (3, (False, ERROR))]
)
def test_dead_letter_ratio_of_a_run(
    kafka_bootstrap: str,
    postgres_url: str,
    instance: dg.DagsterInstance,
    bad: int,
    expected: tuple[bool, Any],
) -> None:
    topic = make_topic(max_dead_letter_ratio=0.02)
    translated = translate(topic)
    fill(kafka_bootstrap, topic, 100 - bad)
    produce(kafka_bootstrap, topic.name, [(0, None, b"not json")] * bad)
    result = ingest(translated, instance, postgres_url, kafka_bootstrap)
    assert result.success
    key = translated.tables[0].key
    assert latest(instance, key, "dead_letter_ratio") == expected
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "dead_letter_ratio"
    ]
    assert evaluation.metadata["dead_letter_ratio_run"].value == bad / 100
    assert evaluation.metadata["dead_letter_ratio_24h"].value == bad / 100


def test_retention_loss_on_the_mock_broker_is_an_error_before_and_after_the_run(
    kafka_bootstrap: str, postgres_url: str, instance: dg.DagsterInstance
) -> None:
    topic = make_topic()
    translated = translate(topic)
    key = translated.tables[0].key
    fill(kafka_bootstrap, topic, 10, partition=2)
    assert ingest(translated, instance, postgres_url, kafka_bootstrap).success  # stored: 10
    fill(kafka_bootstrap, topic, 8_000, partition=2, size=1_000)  # ~8 MB > ~5 MB kept
    result = tick(translated, instance, postgres_url, kafka_bootstrap)
    [pending] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert (pending.check_name, pending.passed, pending.severity) == (
        "retention_loss",
        False,
        ERROR,
    )
    lost = pending.metadata["messages_lost_to_retention"].value
    assert lost > 1_000
    assert f"partition 2: offsets 10..{10 + lost - 1}" in (pending.description or "")
    assert latest(instance, key, "retention_loss") == (False, ERROR)

    run = ingest(translated, instance, postgres_url, kafka_bootstrap)
    assert run.success
    [materialization] = run.asset_materializations_for_node("ingest_tables")
    assert materialization.metadata["messages_lost_to_retention"].value >= lost
    assert "offsets 10.." in materialization.metadata["retention_lost/partition_2"].value
    assert latest(instance, key, "retention_loss") == (False, ERROR)
