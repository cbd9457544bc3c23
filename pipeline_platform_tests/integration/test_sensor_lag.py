"""The Kafka lag sensor against a real Kafka-protocol broker and a real PostgreSQL warehouse."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from pipeline_platform.factory import naming
from pipeline_platform.factory.packing import ingestion_run_config, run_key_for
from pipeline_platform.factory.sensors import LagSensorOptions, build_kafka_sensors
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.ingestion.lag import PartitionLag, read_lags
from pipeline_platform.ingestion.service import ingest_table, read_lag
from pipeline_platform.registry.document import Topic
from pipeline_platform.resources import KafkaResource, WarehouseResource
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform_tests.kafka import produce
from pipeline_platform_tests.servers import free_port

PARTITIONS = 4  # the mock broker auto-creates topics with 4 partitions
# One table per run here (packing has its own test below).
OPTIONS = LagSensorOptions(
    lag_timeout_seconds=5.0, max_messages_per_run=1_000, max_tables_per_run=1
)


def make_topic(active: bool = True, data_source: str = "warehouse") -> Topic:
    suffix = uuid.uuid4().hex[:8]
    return Topic.model_validate(
        {
            "name": f"test.sensor.{suffix}",
            "partitions": PARTITIONS,
            "active": active,
            "table": {
                "name": f"s_{suffix}",
                "data_source": data_source,
                "upsert_key": ["id"],
                "mappings": [
                    {"source": "id", "column": "id", "type": "integer", "required": True},
                    {"source": "v", "column": "v", "type": "string"},
                ],
            },
        }
    )


def target_of(topic: Topic) -> TableTarget:
    assert topic.table is not None
    key = naming.table_key(topic.table.data_source, topic.table.name)
    return TableTarget(key, topic, topic.table, None)


def fill(bootstrap: str, topic: Topic, per_partition: dict[int, int]) -> None:
    messages = [
        (p, None, orjson.dumps({"id": p * 1_000 + i, "v": "x"}))
        for p, count in per_partition.items()
        for i in range(count)
    ]
    produce(bootstrap, topic.name, messages)


def tick(
    targets: list[TableTarget], warehouse_url: str, bootstrap: str, instance: dg.DagsterInstance
) -> dg.SensorResult:
    [sensor] = build_kafka_sensors(targets, shards=1, running=False, options=OPTIONS)
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "warehouse": WarehouseResource(url=warehouse_url),
            "kafka": KafkaResource(bootstrap_servers=bootstrap),
        },
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def observed(result: dg.SensorResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
        for e in result.asset_events or []
        if isinstance(e, dg.AssetObservation)
    }


def broker_topics(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return set(admin.list_topics(timeout=5).topics)


@pytest.fixture
def instance() -> Any:
    with dg.instance_for_test() as instance:
        yield instance


def test_sensor_requests_runs_for_lagging_tables_then_nothing_after_ingestion(
    kafka_bootstrap: str, postgres_url: str, instance: dg.DagsterInstance
) -> None:
    busy, quiet, never, inactive = make_topic(), make_topic(), make_topic(), make_topic(False)
    fill(kafka_bootstrap, busy, {0: 4, 1: 3, 3: 5})
    fill(kafka_bootstrap, quiet, {2: 2})
    fill(kafka_bootstrap, inactive, {0: 9})
    targets = [target_of(t) for t in (busy, quiet, never, inactive)]

    started = time.monotonic()
    first = tick(targets, postgres_url, kafka_bootstrap, instance)
    assert time.monotonic() - started < 10

    assert first.run_requests is not None
    by_topic = {r.tags[naming.TOPIC_TAG]: r for r in first.run_requests}
    assert list(by_topic) == [busy.name, quiet.name]  # largest lag first; no inactive topic
    for topic, ends in ((busy, {0: 4, 1: 3, 2: 0, 3: 5}), (quiet, {0: 0, 1: 0, 2: 2, 3: 0})):
        target = target_of(topic)
        request = by_topic[topic.name]
        lag = {p: PartitionLag(stored=0, end=end) for p, end in ends.items()}
        assert request.run_key == run_key_for(target.key, lag)
        assert request.asset_selection == [target.key]
        assert request.job_name == naming.INGESTION_JOB_NAME
        assert request.tags[naming.TABLE_TAG] == target.key.to_user_string()
        assert request.run_config == ingestion_run_config(OPTIONS.max_messages_per_run)
    seen = observed(first)
    busy_seen = seen[f"kafka/{busy.name}"]
    assert 0 <= busy_seen.pop("lag_seconds") < 60  # Kafka timestamps of messages just produced
    assert busy_seen == {"lag_messages": 12, "lagging_partitions": 3, "end_offset_total": 12}
    assert seen[f"kafka/{quiet.name}"]["lag_messages"] == 2
    assert seen[f"kafka/{never.name}"]["lag_messages"] == 0  # not on the broker: no lag
    assert f"kafka/{inactive.name}" not in seen

    # The tick neither created the unknown topic nor ran DDL in the warehouse.
    assert never.name not in broker_topics(kafka_bootstrap)
    with psycopg.connect(postgres_conninfo(postgres_url)) as conn:
        row = conn.execute("SELECT to_regclass('pp_ingestion_offsets')").fetchone()
    assert row == (None,)

    result = ingest_table(
        busy,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="r1",
    )
    assert result.messages == 12

    second = tick(targets, postgres_url, kafka_bootstrap, instance)
    assert second.run_requests is not None
    assert [r.tags[naming.TOPIC_TAG] for r in second.run_requests] == [quiet.name]
    assert second.run_requests[0].run_key == by_topic[quiet.name].run_key
    assert observed(second)[f"kafka/{busy.name}"]["lag_messages"] == 0
    assert observed(second)[f"kafka/{busy.name}"]["lag_seconds"] == 0.0

    fill(kafka_bootstrap, busy, {1: 2})
    third = tick(targets, postgres_url, kafka_bootstrap, instance)
    assert third.run_requests is not None
    again = {r.tags[naming.TOPIC_TAG]: r for r in third.run_requests}
    busy_lag = {0: (4, 4), 1: (3, 5), 2: (0, 0), 3: (5, 5)}
    assert again[busy.name].run_key == run_key_for(
        target_of(busy).key, {p: PartitionLag(s, e) for p, (s, e) in busy_lag.items()}
    )
    assert observed(third)[f"kafka/{busy.name}"]["lag_messages"] == 2


def test_sensor_skips_quickly_when_the_broker_is_down(
    postgres_url: str, instance: dg.DagsterInstance
) -> None:
    targets = [target_of(make_topic()) for _ in range(3)]
    options = LagSensorOptions(lag_timeout_seconds=1.0)
    [sensor] = build_kafka_sensors(targets, shards=1, running=False, options=options)
    bootstrap = f"127.0.0.1:{free_port()}"
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "warehouse": WarehouseResource(url=postgres_url),
            "kafka": KafkaResource(bootstrap_servers=bootstrap),
        },
    )
    started = time.monotonic()
    result = sensor(context)
    assert time.monotonic() - started < 5
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    assert result.skip_reason is not None
    assert f"Kafka brokers {bootstrap} unreachable" in result.skip_reason.skip_message


def test_read_lags_across_warehouses_in_one_call(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'other.db'}"
    in_pg, in_lite, no_table = make_topic(), make_topic(data_source="lite"), make_topic()
    fill(kafka_bootstrap, in_pg, {0: 3})
    fill(kafka_bootstrap, in_lite, {1: 4})
    urls = {"warehouse": postgres_url, "lite": sqlite_url}
    # No state table anywhere yet (the SQLite file does not even exist).
    before = read_lags(
        [in_pg, in_lite, no_table], warehouse_urls=urls, kafka_config=_kafka(kafka_bootstrap)
    )
    assert sum(p.lag for p in before[in_pg.name].values()) == 3
    assert sum(p.lag for p in before[in_lite.name].values()) == 4
    assert before[no_table.name] == {}
    assert not (tmp_path / "other.db").exists()
    for topic, url in ((in_pg, postgres_url), (in_lite, sqlite_url)):
        ingest_table(topic, warehouse_url=url, kafka_config=_kafka(kafka_bootstrap), run_id="r")
    errors: dict[str, Exception] = {}
    after = read_lags(
        [in_pg, in_lite, make_topic(data_source="nowhere")],
        warehouse_urls=urls.__getitem__,
        kafka_config=_kafka(kafka_bootstrap),
        errors=errors,
    )
    assert after[in_pg.name][0] == PartitionLag(stored=3, end=3)
    assert after[in_lite.name][1] == PartitionLag(stored=4, end=4)
    assert sum(p.lag for lag in after.values() for p in lag.values()) == 0
    [(missing, error)] = errors.items()
    assert isinstance(error, KeyError)
    assert missing not in after


def _kafka(bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap}


def test_read_lag_of_a_missing_topic_is_empty_and_does_not_create_it(
    kafka_bootstrap: str, postgres_url: str
) -> None:
    missing = make_topic()
    lag = read_lag(missing, warehouse_url=postgres_url, kafka_config=_kafka(kafka_bootstrap))
    assert lag == {}
    assert missing.name not in broker_topics(kafka_bootstrap)
