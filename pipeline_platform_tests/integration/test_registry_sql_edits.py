"""Spec §2.2: the old consumer's SQL runs verbatim (sqlite3 and psql) and becomes a revision."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.fingerprint import content_fingerprint
from pipeline_platform.registry.live_validation import validate_live
from pipeline_platform.registry.sql_edits import record_sql_edits
from pipeline_platform.registry.store import history, import_document, read_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.integration.sql_statements import INSERTS, QUERIES, run_sql

SMALL = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
NEW = "device.sensor.new.raw"


def _registry(url: str) -> Engine:
    engine = create_registry_engine(url)
    upgrade_registry(engine)
    import_document(engine, load_document(SMALL), actor="alice")
    return engine


def test_spec_statements_run_verbatim_and_become_a_sql_revision(database_url: str) -> None:
    engine = _registry(database_url)
    before = content_fingerprint(engine)
    assert record_sql_edits(engine) == 1  # nothing edited: no new revision

    run_sql(database_url, INSERTS)
    assert content_fingerprint(engine) != before
    active, wifi, dependencies = (run_sql(database_url, q) for q in QUERIES)
    assert NEW in active and "device_sensor_new_raw" in active
    wifi_rows = [line for line in wifi.splitlines() if "device.network.wifi.raw" in line]
    assert len(wifi_rows) == 6
    assert "device_id" in wifi_rows[0] and "recorded_at" in wifi_rows[1]  # required first
    assert "ssid" in wifi_rows[-1] or "signal_dbm" in wifi_rows[-1]
    assert dependencies.count("silero-vad") == 2

    assert record_sql_edits(engine) == 2
    assert record_sql_edits(engine) == 2  # seen once, recorded once
    newest = history(engine)[0]
    assert (newest.revision, newest.actor) == (2, "sql")
    assert newest.summary["topics"]["added"] == [NEW]

    topic = read_document(engine).topic(NEW)
    assert topic is not None and topic.table is not None
    assert (topic.category, topic.retention_days, topic.partitions) == ("device", 30, 1)
    assert topic.table.data_source == "warehouse"
    assert topic.table.upsert_key == ("device_id", "timestamp")
    assert [(m.source, m.column, m.type, m.required) for m in topic.table.mappings] == [
        ("device_id", "device_id", "string", False),
        ("timestamp", "timestamp", "timestamp", False),
        ("value", "sensor_value", "float", False),
    ]
    assert validate_live(engine)["valid"] is True
    engine.dispose()


def test_an_invalid_sql_edit_is_reported_not_fatal(database_url: str) -> None:
    engine = _registry(database_url)
    run_sql(
        database_url,
        "UPDATE topic_field_mappings SET data_type = 'int' WHERE target_column = 'signal_dbm';",
    )
    assert record_sql_edits(engine) == 2
    result = validate_live(engine)
    assert result["valid"] is False
    assert result["problems"] == [
        {
            "path": "topics[device.network.wifi.raw].table.mappings.3.type",
            "reason": result["problems"][0]["reason"],
        },
        {
            "path": "flows[1].stages[0].inputs[0]",
            "reason": "unknown topic 'device.network.wifi.raw'",
        },
    ]
    assert result["problems"][0]["reason"].startswith("Input should be 'string'")
    assert read_document(engine).topic("device.network.wifi.raw") is None  # skipped, not fatal
    assert result["statistics"]["topics"] == 4
    engine.dispose()


def test_import_after_sql_edit_diffs_against_the_live_rows(sqlite_url: str) -> None:
    engine = _registry(sqlite_url)
    run_sql(sqlite_url, INSERTS)
    result = import_document(engine, load_document(SMALL), actor="bob")
    assert result.diff.lines() == [f"- topic {NEW}"]
    assert record_sql_edits(engine) == result.revision  # the import's own content is recorded
    engine.dispose()
