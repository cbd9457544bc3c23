"""Registry imports on SQLite and on a real PostgreSQL server: diffs, history, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES
from pipeline_platform.registry.database import (
    create_registry_engine,
    current_revision,
    upgrade_registry,
)
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.models import (
    kafka_topic_schemas,
    kafka_topics,
    pipeline_stages,
    topic_field_mappings,
    topic_table_configs,
)
from pipeline_platform.registry.store import history, import_document, read_document, write_topics
from pipeline_platform.registry.store import write as store_write
from pipeline_platform.registry.validation import load_document
from pipeline_platform.registry.yaml_io import dump_document, parse_document
from pipeline_platform_tests.integration.registry_tables import (
    SMALL,
    TABLES,
    counts,
    dump_tables,
    engine,
    small,
    with_topic,
)

__all__ = ["engine", "small"]  # the fixtures, imported for this module

SMALL_COUNTS = {
    "kafka_topics": 5,
    "kafka_topic_schemas": 1,
    "topic_api_endpoints": 3,
    "topic_table_configs": 3,
    "topic_field_mappings": 13,
    "pipeline_flows": 2,
    "pipeline_stages": 3,
    "pipeline_stage_topics": 6,
    "data_sources": 2,
    "modules": len(BUILTIN_MODULES),
    "pipelines": 1,
    "registry_revisions": 1,
}


def test_round_trip_small_registry(engine: Engine, small: RegistryDocument) -> None:
    assert current_revision(engine) == 0
    assert read_document(engine) == RegistryDocument()
    result = import_document(engine, small, actor="alice", source=str(SMALL))
    assert result.revision == 1
    assert result.diff.lines() == [
        "+ topic device.audio.raw",
        "+ topic device.network.wifi.raw",
        "+ topic errors.audio.vad",
        "+ topic media.audio.vad_filtered",
        "+ topic media.text.transcribed.words",
        "+ flow audio-processing",
        "+ flow network-monitoring",
        "+ data_source shop",
        "+ data_source warehouse",
        "+ pipeline daily-sales-sync",
    ]
    assert read_document(engine) == small.canonical()
    assert counts(engine) == SMALL_COUNTS
    assert current_revision(engine) == 1


def test_export_import_export_is_byte_identical(
    engine: Engine, small: RegistryDocument, database_url: str, tmp_path: Path
) -> None:
    import_document(engine, small, actor="alice")
    first = dump_document(read_document(engine))
    assert first == dump_document(small)
    path = tmp_path / "export.yaml"
    path.write_text(first, encoding="utf-8")

    other = create_registry_engine(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade_registry(other)
    import_document(other, load_document(path), actor="bob")
    assert dump_document(read_document(other)) == first
    # Re-importing the export into the first registry changes nothing.
    assert import_document(engine, parse_document(first), actor="alice").revision is None
    assert dump_document(read_document(engine)) == first
    other.dispose()


def test_second_import_is_a_no_op(engine: Engine, small: RegistryDocument) -> None:
    import_document(engine, small, actor="alice")
    before = dump_tables(engine)
    result = import_document(engine, small, actor="alice")
    assert result.revision is None
    assert result.diff.is_empty
    assert result.diff.lines() == []
    assert dump_tables(engine) == before
    assert current_revision(engine) == 1


def test_changed_schema_adds_a_version(engine: Engine, small: RegistryDocument) -> None:
    import_document(engine, small, actor="alice")
    with engine.connect() as connection:
        topic_id = connection.execute(
            select(kafka_topics.c.id).where(kafka_topics.c.topic_name == "device.audio.raw")
        ).scalar_one()
        mapping_ids = connection.execute(select(topic_field_mappings.c.id)).scalars().all()
    new_schema = {"type": "object", "required": ["device_id"]}
    changed = with_topic(small, "device.audio.raw", json_schema=new_schema)
    result = import_document(engine, changed, actor="bob", source="edit")
    assert result.revision == 2
    assert result.diff.lines() == ["~ topic device.audio.raw: schema"]
    with engine.connect() as connection:
        versions = connection.execute(
            select(kafka_topic_schemas.c.topic_id, kafka_topic_schemas.c.version).order_by(
                kafka_topic_schemas.c.version
            )
        ).all()
        same_topic_id = connection.execute(
            select(kafka_topics.c.id).where(kafka_topics.c.topic_name == "device.audio.raw")
        ).scalar_one()
        same_mapping_ids = connection.execute(select(topic_field_mappings.c.id)).scalars().all()
    assert [tuple(v) for v in versions] == [(topic_id, 1), (topic_id, 2)]
    assert same_topic_id == topic_id
    assert sorted(same_mapping_ids) == sorted(mapping_ids)  # the table was not touched
    stored = read_document(engine).topic("device.audio.raw")
    assert stored is not None and stored.json_schema == new_schema

    # Removing the schema records a NULL version; the old versions stay.
    removed = with_topic(small, "device.audio.raw", json_schema=None)
    assert import_document(engine, removed, actor="bob").revision == 3
    assert read_document(engine) == removed.canonical()
    with engine.connect() as connection:
        rows = connection.execute(
            select(kafka_topic_schemas.c.version, kafka_topic_schemas.c.schema_json).order_by(
                kafka_topic_schemas.c.version
            )
        ).all()
    assert [(v, s is None) for v, s in rows] == [(1, False), (2, False), (3, True)]


def test_changed_table_replaces_only_that_table(engine: Engine, small: RegistryDocument) -> None:
    import_document(engine, small, actor="alice")
    wifi = small.topic("device.network.wifi.raw")
    assert wifi is not None and wifi.table is not None
    table = wifi.table.model_copy(update={"freshness_minutes": 60})
    changed = with_topic(small, "device.network.wifi.raw", table=table, description="Wi-Fi")
    result = import_document(engine, changed, actor="bob")
    assert result.diff.lines() == ["~ topic device.network.wifi.raw: description, table"]
    assert read_document(engine) == changed.canonical()
    with engine.connect() as connection:
        freshness = connection.execute(
            select(topic_table_configs.c.table_name, topic_table_configs.c.freshness_minutes)
        ).all()
    assert sorted(freshness) == [
        ("device_audio_raw", None),
        ("device_network_wifi_raw", 60),
        ("transcribed_words", None),
    ]
    assert counts(engine) == {**SMALL_COUNTS, "registry_revisions": 2}


def test_removed_topic_and_flow_are_removed(engine: Engine, small: RegistryDocument) -> None:
    import_document(engine, small, actor="alice")
    with engine.connect() as connection:
        stage_ids_before = dict(
            connection.execute(select(pipeline_stages.c.name, pipeline_stages.c.id)).all()
        )
    flows = tuple(f for f in small.flows if f.name != "network-monitoring")
    topics = tuple(t for t in small.topics if t.name != "device.network.wifi.raw")
    smaller = small.model_copy(update={"topics": topics, "flows": flows})
    result = import_document(engine, smaller, actor="carol")
    assert result.revision == 2
    assert result.diff.lines() == ["- topic device.network.wifi.raw", "- flow network-monitoring"]
    assert read_document(engine) == smaller.canonical()
    assert counts(engine) == {
        **SMALL_COUNTS,
        "kafka_topics": 4,
        "topic_api_endpoints": 2,
        "topic_table_configs": 2,
        "topic_field_mappings": 7,
        "pipeline_flows": 1,
        "pipeline_stages": 2,
        "pipeline_stage_topics": 5,
        "registry_revisions": 2,
    }
    with engine.connect() as connection:
        stage_ids_after = dict(
            connection.execute(select(pipeline_stages.c.name, pipeline_stages.c.id)).all()
        )
    # The unchanged flow's stages keep their ids.
    assert stage_ids_after == {
        "vad-processing": stage_ids_before["vad-processing"],
        "speech-to-text": stage_ids_before["speech-to-text"],
    }


def test_history_newest_first_with_actor_and_summary(
    engine: Engine, small: RegistryDocument
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    import_document(engine, small, actor="alice", source="small.yaml")
    changed = with_topic(small, "errors.audio.vad", partitions=6)
    import_document(engine, changed, actor="bob")
    records = history(engine)
    assert [(r.revision, r.actor, r.source) for r in records] == [
        (2, "bob", None),
        (1, "alice", "small.yaml"),
    ]
    assert records[0].summary["topics"] == {
        "added": [],
        "changed": {"errors.audio.vad": ["partitions"]},
        "removed": [],
    }
    assert records[1].summary["pipelines"]["added"] == ["daily-sales-sync"]
    for record in records:
        assert record.created_at.tzinfo is not None
        assert start <= record.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert [r.revision for r in history(engine, limit=1)] == [2]
    assert current_revision(engine) == 2


def test_dry_run_writes_nothing(engine: Engine, small: RegistryDocument) -> None:
    before = dump_tables(engine)
    result = import_document(engine, small, actor="alice", dry_run=True)
    assert result.revision is None
    assert len(result.diff.lines()) == 10
    assert dump_tables(engine) == before
    assert current_revision(engine) == 0

    import_document(engine, small, actor="alice")
    before = dump_tables(engine)
    changed = with_topic(small, "errors.audio.vad", description="VAD failures")
    result = import_document(engine, changed, actor="alice", dry_run=True)
    assert result.diff.lines() == ["~ topic errors.audio.vad: description"]
    assert dump_tables(engine) == before


def test_failed_import_leaves_registry_exactly_as_before(
    engine: Engine, small: RegistryDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_document(engine, small, actor="alice")
    before = dump_tables(engine)

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom after topics were written")

    monkeypatch.setattr(store_write, "apply_flows", explode)
    flows = tuple(f for f in small.flows if f.name != "network-monitoring")
    topics = tuple(t for t in small.topics if t.name != "device.network.wifi.raw")
    changed = with_topic(
        small.model_copy(update={"topics": topics, "flows": flows}),
        "device.audio.raw",
        json_schema={"type": "object"},
        partitions=9,
    )
    with pytest.raises(RuntimeError, match="boom"):
        import_document(engine, changed, actor="mallory")
    assert dump_tables(engine) == before
    assert read_document(engine) == small.canonical()
    assert current_revision(engine) == 1
    assert [r.actor for r in history(engine)] == ["alice"]


def test_first_import_failure_leaves_registry_empty(
    engine: Engine, small: RegistryDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(write_topics, "_insert_stages", explode)
    with pytest.raises(RuntimeError):
        import_document(engine, small, actor="alice")
    assert counts(engine) == {name: 0 for name in TABLES} | {"modules": len(BUILTIN_MODULES)}


def test_current_revision_counts_only_real_changes(engine: Engine, small: RegistryDocument) -> None:
    assert current_revision(engine) == 0
    import_document(engine, small, actor="a")
    import_document(engine, small, actor="a")
    import_document(engine, small, actor="a", dry_run=True)
    assert current_revision(engine) == 1
    import_document(engine, RegistryDocument(), actor="a")
    assert current_revision(engine) == 2
    assert read_document(engine) == RegistryDocument()
    assert counts(engine) == {name: 0 for name in TABLES} | {
        "modules": len(BUILTIN_MODULES),
        "registry_revisions": 2,
    }
    with engine.connect() as connection:
        schemas = connection.execute(select(func.count()).select_from(kafka_topic_schemas))
        assert schemas.scalar_one() == 0


def test_unvalidated_document_with_dangling_stage_topic_is_refused(
    engine: Engine, small: RegistryDocument
) -> None:
    import_document(engine, small, actor="alice")
    before = dump_tables(engine)
    topics = tuple(t for t in small.topics if t.name != "errors.audio.vad")
    broken = small.model_copy(update={"topics": topics})
    with pytest.raises(ValueError, match=r"names unknown topic 'errors\.audio\.vad'"):
        import_document(engine, broken, actor="bob")
    assert dump_tables(engine) == before
