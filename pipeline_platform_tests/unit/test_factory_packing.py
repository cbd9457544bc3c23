"""Tables packed into ingestion runs: the per-tick cap, budgets, and no table in two runs."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pytest

from pipeline_platform.config import load_settings
from pipeline_platform.factory import naming
from pipeline_platform.factory.builder import FactoryOptions
from pipeline_platform.factory.packing import LaggingTable, in_flight_tables, plan_runs
from pipeline_platform.factory.sensors import LagSensorOptions, evaluate_lag
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.ingestion.lag import PartitionLag
from pipeline_platform.registry.document import Topic
from pipeline_platform.resources import KafkaResource, WarehouseResource

Lag = PartitionLag


def make_targets(count: int) -> list[TableTarget]:
    targets = []
    for i in range(count):
        topic = Topic.model_validate(
            {
                "name": f"pack.{i:05d}",
                "table": {
                    "name": f"pack_{i:05d}",
                    "mappings": [{"source": "id", "column": "id", "type": "integer"}],
                },
            }
        )
        assert topic.table is not None
        targets.append(
            TableTarget(naming.table_key("warehouse", topic.table.name), topic, topic.table, None)
        )
    return targets


def lagging(targets: list[TableTarget], lags: list[int]) -> list[LaggingTable]:
    return [LaggingTable(t, {0: Lag(0, n)}, n) for t, n in zip(targets, lags, strict=True)]


def test_large_backlogs_run_alone_small_tables_share_within_budgets() -> None:
    targets = make_targets(12)
    tables = lagging(targets, [500, 300, 40, 30, 30, 20, 10, 10, 5, 5, 1, 1])
    runs = plan_runs(tables, max_runs=8, max_tables=4, max_messages=100)
    sizes = [[t.messages for t in run.tables] for run in runs]
    # Own runs and shared runs take turns; shared runs obey both budgets (first fit).
    assert sizes == [[500], [40, 30, 30], [300], [20, 10, 10, 5], [5, 1, 1]]
    assert all(
        len(run.tables) <= 4 and (run.messages <= 100 or len(run.tables) == 1) for run in runs
    )
    counts = Counter(t.target.key for run in runs for t in run.tables)
    assert set(counts.values()) == {1} and len(counts) == 12


def test_cap_bounds_runs_and_leaves_the_rest_for_the_next_tick() -> None:
    targets = make_targets(3_000)
    tables = lagging(targets, [5] * 2_990 + [1_000_000] * 10)
    runs = plan_runs(tables, max_runs=8, max_tables=50, max_messages=100_000)
    assert len(runs) == 8
    assert [len(run.tables) for run in runs] == [1, 50] * 4
    assert len({t.target.key for run in runs for t in run.tables}) == 204


def test_max_tables_one_is_a_run_per_table() -> None:
    tables = lagging(make_targets(3), [3, 2, 1])
    runs = plan_runs(tables, max_runs=8, max_tables=1, max_messages=100)
    assert [[t.messages for t in run.tables] for run in runs] == [[3], [2], [1]]


@pytest.fixture
def instance() -> Any:
    with dg.instance_for_test() as instance:
        yield instance


def tick(
    instance: dg.DagsterInstance, targets: list[TableTarget], lags: Mapping[str, int]
) -> dg.SensorResult:
    def read_lags(topics: Any, **kwargs: Any) -> Mapping[str, Mapping[int, Lag]]:
        return {t.name: {0: Lag(0, lags.get(t.name, 0))} for t in topics}

    return evaluate_lag(
        dg.build_sensor_context(instance=instance),
        targets,
        warehouse=WarehouseResource(url="sqlite:///w.db"),
        kafka=KafkaResource(bootstrap_servers="broker:9092"),
        options=LagSensorOptions(max_runs_per_tick=8, max_tables_per_run=50),
        read_lags=read_lags,
        broker_unavailable=ConnectionError,
        read_ages=lambda lags, *args: dict.fromkeys(lags, 1.0),
    )


def queue(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """Record the requested runs as queued, as the daemon does."""
    for request in result.run_requests or []:
        instance.add_run(
            dg.DagsterRun(
                job_name=naming.INGESTION_JOB_NAME,
                run_id=uuid.uuid4().hex,
                status=dg.DagsterRunStatus.NOT_STARTED,  # queued or not yet started
                tags=request.tags,
                asset_selection=frozenset(request.asset_selection or ()),
            )
        )


def test_3000_tables_ticks_respect_the_cap_and_never_put_a_table_in_two_runs(instance) -> None:
    targets = make_targets(3_000)
    lags = {t.topic.name: 3 + i % 7 for i, t in enumerate(targets)}
    lags[targets[7].topic.name] = 2_000_000  # one large backlog
    seen: Counter[dg.AssetKey] = Counter()
    ticks = 0
    while ticks < 20:
        result = tick(instance, targets, lags)
        requests = result.run_requests or []
        if not requests:
            break
        ticks += 1
        assert len(requests) <= 8
        for request in requests:
            assert request.asset_selection is not None
            seen.update(request.asset_selection)
            kind = request.tags[naming.INGESTION_TAG]
            assert kind == ("single" if len(request.asset_selection) == 1 else "packed")
            assert len(request.asset_selection) <= 50
        queue(instance, result)
    # Queued runs keep their tables out of later ticks: every table exactly once.
    assert set(seen.values()) == {1}
    assert len(seen) == 3_000
    assert ticks == 8  # 1 own run + 7 packs of 50, then 8 packs of 50 per tick


def test_in_flight_tables_from_tags_selection_and_whole_job_runs(instance) -> None:
    targets = make_targets(4)
    names = [t.key.to_user_string() for t in targets]

    def add(status: dg.DagsterRunStatus, **kwargs: Any) -> None:
        instance.add_run(dg.DagsterRun(run_id=uuid.uuid4().hex, status=status, **kwargs))

    add(
        dg.DagsterRunStatus.STARTED,
        job_name="ingestion",
        tags={naming.TABLES_TAG: ",".join(names[:2])},
    )
    add(
        dg.DagsterRunStatus.NOT_STARTED,
        job_name="__ASSET_JOB",
        asset_selection=frozenset({targets[2].key}),
    )
    add(dg.DagsterRunStatus.SUCCESS, job_name="ingestion", tags={naming.TABLE_TAG: names[3]})
    assert in_flight_tables(instance, targets) == set(names[:3])
    add(dg.DagsterRunStatus.STARTING, job_name=naming.INGESTION_JOB_NAME)
    assert in_flight_tables(instance, targets) == set(names)
    result = tick(instance, targets, {t.topic.name: 5 for t in targets})
    assert not result.run_requests
    assert "4 lagging table(s) of 4 already in a run in flight" in result.skip_reason.skip_message


def test_packing_settings_from_environment() -> None:
    env = {
        "PIPELINE_KAFKA_SENSOR_MAX_RUNS": "3",
        "PIPELINE_INGEST_RUN_MAX_TABLES": "20",
        "PIPELINE_INGEST_RUN_MAX_MESSAGES": "5000",
    }
    lag = FactoryOptions.from_env(env).lag
    assert (lag.max_runs_per_tick, lag.max_tables_per_run, lag.max_messages_per_packed_run) == (
        3,
        20,
        5000,
    )
    defaults = FactoryOptions.from_env({}).lag
    assert (defaults.max_runs_per_tick, defaults.max_tables_per_run) == (8, 50)
    for name in env:
        with pytest.raises(ValueError, match=name):
            load_settings({name: "0"})
        with pytest.raises(ValueError, match=name):
            load_settings({name: "eight"})
