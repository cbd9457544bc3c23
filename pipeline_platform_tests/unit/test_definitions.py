"""The code location root: shape, snapshot loading and fallback, validation, materialization."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

from pipeline_platform.config import load_settings
from pipeline_platform.factory import loader, naming
from pipeline_platform.factory.builder import FactoryOptions, build_definitions
from pipeline_platform.factory.snapshot import RegistrySnapshot, read_last_good, snapshot_path
from pipeline_platform.registry.document import FieldMapping, RegistryDocument, TableConfig, Topic
from pipeline_platform.registry.validation import load_document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


def _document_with_tables(n_tables: int) -> RegistryDocument:
    base = load_document(FIXTURE)
    mappings = (FieldMapping(source="id", column="id", type="string", required=True),)
    extra = tuple(
        Topic(name=f"extra.topic.{i}", table=TableConfig(name=f"extra_{i}", mappings=mappings))
        for i in range(n_tables)
    )
    return base.model_copy(update={"topics": (*base.topics, *extra)})


def _shape(defs: dg.Definitions) -> tuple[list[str], list[str]]:
    repo = defs.get_repository_def()
    return sorted(j.name for j in repo.get_all_jobs()), sorted(s.name for s in repo.sensor_defs)


def test_jobs_and_sensors_do_not_grow_with_tables() -> None:
    small = build_definitions(
        RegistrySnapshot(_document_with_tables(0), "1", "registry"), environ={}
    )
    large = build_definitions(
        RegistrySnapshot(_document_with_tables(200), "1", "registry"), environ={}
    )
    assert _shape(small) == _shape(large)
    assert _shape(small) == (
        [
            "__ASSET_JOB",
            "flow_audio_processing",
            "flow_network_monitoring",
            "ingestion",
            "pipeline_daily_sales_sync",
            "table_pipelines",
        ],
        ["kafka_lag_sensor", "registry_reload_sensor"],
    )
    graph = large.get_repository_def().asset_graph
    # 12 topic/API/status assets, the pipeline's output and source table, 400 tables/topics.
    assert len(graph.get_all_asset_keys()) == 14 + 400
    # One step for all tables.
    assert len(large.get_repository_def().get_job("ingestion").graph.node_defs) == 1


def test_sharded_kafka_sensors_partition_the_tables() -> None:
    snapshot = RegistrySnapshot(_document_with_tables(50), "1", "registry")
    defs = build_definitions(snapshot, options=FactoryOptions(kafka_sensor_shards=3), environ={})
    names = _shape(defs)[1]
    assert names == [
        "kafka_lag_sensor_1_of_3",
        "kafka_lag_sensor_2_of_3",
        "kafka_lag_sensor_3_of_3",
        "registry_reload_sensor",
    ]


def test_flow_jobs_select_the_flow_tables() -> None:
    defs = build_definitions(RegistrySnapshot(load_document(FIXTURE), "1", "registry"), environ={})
    job = defs.resolve_job_def("flow_audio_processing")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"warehouse/device_audio_raw", "warehouse/transcribed_words"}


def test_resources_reference_env_vars_without_values() -> None:
    env = {"PIPELINE_WAREHOUSE_URL": "postgresql://u:secret@db/w", "KAFKA_SASL_PASSWORD": "pw"}
    defs = build_definitions(RegistrySnapshot(load_document(FIXTURE), "1", "registry"), environ=env)
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    serialized = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "secret" not in serialized
    assert "pw" not in serialized.replace("pw_", "")
    assert "PIPELINE_WAREHOUSE_URL" in serialized


class _Result(SimpleNamespace):
    pass


def test_materialize_reports_numeric_metadata_and_checks() -> None:
    calls: list[dict[str, Any]] = []

    def fake_ingest(topic: Topic, **kwargs: Any) -> _Result:
        calls.append({"topic": topic.name, **kwargs})
        return _Result(
            rows_written=90,
            dead_letters=2,
            messages=92,
            seconds=0.5,
            messages_per_second=184.0,
            lag_left=200_000 if topic.name == "device.network.wifi.raw" else 0,
            offsets={0: (0, 50), 1: (10, 52)},
        )

    snapshot = RegistrySnapshot(load_document(FIXTURE), "1", "registry")
    defs = build_definitions(snapshot, ingest=fake_ingest, environ={})
    job = defs.resolve_job_def(naming.INGESTION_JOB_NAME)
    selection = [dg.AssetKey(["warehouse", "device_network_wifi_raw"])]
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=selection,
            run_config={"ops": {naming.INGESTION_OP_NAME: {"config": {"max_messages": 10}}}},
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node(naming.INGESTION_OP_NAME)
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        assert metadata == {
            "rows_written": 90,
            "dead_letters": 2,
            "messages": 92,
            "seconds": 0.5,
            "messages_per_second": 184.0,
            "lag_left": 200_000,
            "messages_lost_to_retention": 0,
            "offsets/partition_0/from": 0,
            "offsets/partition_0/to": 50,
            "offsets/partition_1/from": 10,
            "offsets/partition_1/to": 52,
        }
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert sorted(checks) == ["dead_letter_ratio", "max_lag_messages", "retention_loss"]
        lag = checks["max_lag_messages"]
        assert (lag.passed, lag.severity) == (False, dg.AssetCheckSeverity.ERROR)
        # 2 dead letters of 92 messages is above the 0.01 default limit.
        dead = checks["dead_letter_ratio"]
        assert (dead.passed, dead.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert checks["retention_loss"].passed is True
    assert [c["topic"] for c in calls] == ["device.network.wifi.raw"]
    assert calls[0]["max_messages"] == 10
    assert calls[0]["kafka_config"] == {"bootstrap.servers": "localhost:9092"}


def test_large_registries_ingest_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts bound Dagster's per-node check cost; the ``ingest_tables`` cap applies to all."""
    from pipeline_platform.factory import assets

    monkeypatch.setattr(assets, "TABLES_PER_PART", 2)
    calls: list[dict[str, Any]] = []

    def fake_ingest(topic: Topic, **kwargs: Any) -> _Result:
        calls.append({"topic": topic.name, **kwargs})
        return _Result(
            rows_written=1,
            dead_letters=0,
            messages=1,
            seconds=0.1,
            messages_per_second=10.0,
            lag_left=0,
            offsets={},
        )

    snapshot = RegistrySnapshot(load_document(FIXTURE), "1", "registry")
    defs = build_definitions(snapshot, ingest=fake_ingest, environ={})
    job = defs.resolve_job_def(naming.INGESTION_JOB_NAME)
    parts = {
        node.name: sorted(
            k.to_user_string()
            for k in job.asset_layer.executable_asset_keys
            if job.asset_layer.get_op_output_handle(k).node_handle.name == node.name
        )
        for node in job.graph.nodes
    }
    assert parts == {
        "ingest_tables": ["warehouse/device_audio_raw", "warehouse/device_network_wifi_raw"],
        "ingest_tables_part_2": ["warehouse/transcribed_words"],
    }
    selection = [dg.AssetKey(["warehouse", "transcribed_words"])]
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=selection,
            run_config={"ops": {naming.INGESTION_OP_NAME: {"config": {"max_messages": 7}}}},
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("ingest_tables_part_2")
        assert materialization.asset_key == selection[0]
    assert [(c["topic"], c["max_messages"]) for c in calls] == [("media.text.transcribed.words", 7)]


def test_failed_table_fails_the_run_but_others_materialize() -> None:
    def flaky(topic: Topic, **kwargs: Any) -> _Result:
        if topic.name == "device.audio.raw":
            raise RuntimeError("broker gone")
        return _Result(
            rows_written=1,
            dead_letters=0,
            messages=1,
            seconds=0.1,
            messages_per_second=10.0,
            lag_left=0,
            offsets={},
        )

    snapshot = RegistrySnapshot(load_document(FIXTURE), "1", "registry")
    defs = build_definitions(snapshot, ingest=flaky, environ={})
    job = defs.resolve_job_def(naming.INGESTION_JOB_NAME)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        done = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert done == {"warehouse/device_network_wifi_raw", "warehouse/transcribed_words"}


# -- loading --------------------------------------------------------------------------------


def test_successful_load_writes_last_good_snapshot(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "PIPELINE_REGISTRY_FILE": str(FIXTURE)}
    snapshot = loader.load_snapshot(load_settings(env), env)
    assert snapshot.origin == "file"
    assert snapshot.revision.startswith("file:")
    stored = read_last_good(tmp_path)
    assert stored is not None
    assert stored.document == snapshot.document
    assert stored.revision == snapshot.revision
    assert list(tmp_path.iterdir()) == [snapshot_path(tmp_path)]  # no temporary left behind


def test_unreachable_registry_falls_back_with_a_visible_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "PIPELINE_REGISTRY_FILE": str(FIXTURE)}
    good = loader.load_snapshot(load_settings(env), env)

    def unreachable(*args: Any, **kwargs: Any) -> RegistrySnapshot:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(loader, "read_registry", unreachable)
    snapshot = loader.load_snapshot(load_settings(env), env)
    assert snapshot.is_fallback
    assert snapshot.document == good.document
    assert snapshot.warning is not None and "connection refused" in snapshot.warning
    defs = build_definitions(snapshot, environ={})
    status = next(
        spec
        for spec in defs.assets or []
        if isinstance(spec, dg.AssetSpec) and spec.key == naming.REGISTRY_STATUS_KEY
    )
    assert status.description is not None and status.description.startswith("WARNING: Registry")
    assert status.metadata["fallback"] is True
    assert len(defs.get_repository_def().asset_graph.get_all_asset_keys()) == 14


def test_unreachable_registry_without_snapshot_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "PIPELINE_REGISTRY_URL": "postgresql://u:pw@nowhere/r"}

    def unreachable(*args: Any, **kwargs: Any) -> RegistrySnapshot:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(loader, "read_registry", unreachable)
    with pytest.raises(loader.RegistryUnavailableError) as raised:
        loader.load_snapshot(load_settings(env), env)
    message = str(raised.value)
    assert "postgresql://u:***@nowhere/r" in message
    assert "no last good snapshot" in message
    assert ":pw@" not in message


def test_snapshot_payload_round_trip() -> None:
    snapshot = RegistrySnapshot(load_document(FIXTURE), "12", "registry")
    restored = RegistrySnapshot.from_payload(snapshot.to_payload())
    assert restored == snapshot


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    """Importing the root reads neither the environment's registry nor any database."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "PIPELINE_REGISTRY_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    code = "import pipeline_platform.definitions as d; print(type(d.defs).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "LazyDefinitions"
    assert list(tmp_path.iterdir()) == []


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "PIPELINE_REGISTRY_FILE": str(FIXTURE),
    }
    dagster = Path(sys.executable).with_name("dagster")
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "pipeline_platform.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_flow_jobs_are_dropped_above_the_budget_with_a_note() -> None:
    snapshot = RegistrySnapshot(load_document(FIXTURE), "1", "registry")
    defs = build_definitions(snapshot, options=FactoryOptions(flow_job_budget=10), environ={})
    assert _shape(defs)[0] == [
        "__ASSET_JOB",
        "ingestion",
        "pipeline_daily_sales_sync",
        "table_pipelines",
    ]
    status = next(
        spec
        for spec in defs.assets or []
        if isinstance(spec, dg.AssetSpec) and spec.key == naming.REGISTRY_STATUS_KEY
    )
    assert "Flows have no jobs at this registry size" in (status.description or "")
