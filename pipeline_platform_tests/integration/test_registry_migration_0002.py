"""Migration 0002 keeps every row: 0001 data → 0002 → back to 0001 → 0002, on both dialects."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from pipeline_platform.registry.database import alembic_config, create_registry_engine
from pipeline_platform.registry.store import read_document

ROWS_0001 = """
INSERT INTO kafka_topics (id, name, category, source, datatype, description, partitions,
    retention_days, active)
VALUES (7, 'device.audio.raw', 'device', 'audio', 'raw', 'Audio', 3, 7, true),
       (9, 'media.audio.vad', 'media', 'audio', 'vad', '', 1, NULL, true);
INSERT INTO kafka_topic_schemas (id, topic_id, version, schema_json, created_at)
VALUES (1, 7, 1, '{"type":"object"}', '2026-11-22 10:00:00');
INSERT INTO topic_api_endpoints (id, topic_id, position, path, method)
VALUES (1, 7, 0, '/audio/upload', 'POST');
INSERT INTO topic_table_configs (id, topic_id, data_source, schema_name, table_name, upsert_key,
    time_column, max_lag_messages, freshness_minutes)
VALUES (4, 7, 'warehouse', NULL, 'device_audio_raw', '["device_id","recorded_at"]',
    'recorded_at', 1000, NULL);
INSERT INTO topic_field_mappings (id, table_config_id, position, source_path, column_name,
    data_type, required, default_value)
VALUES (11, 4, 1, 'recorded_at', 'recorded_at', 'timestamp', true, NULL),
       (10, 4, 0, 'device_id', 'device_id', 'string', true, NULL),
       (12, 4, 2, 'audio.rate', 'sample_rate', 'integer', false, '16000');
INSERT INTO pipeline_flows (id, name, description, priority, active)
VALUES (1, 'audio', '', 'high', true);
INSERT INTO pipeline_stages (id, flow_id, name, service_name, description, stage_order)
VALUES (1, 1, 'vad', 'silero-vad', '', 1);
INSERT INTO pipeline_stage_topics (id, stage_id, topic_id, role, position)
VALUES (1, 1, 7, 'input', 0), (2, 1, 9, 'output', 0);
INSERT INTO registry_revisions (revision, created_at, actor, source, summary)
VALUES (1, '2026-11-22 10:00:00', 'alice', NULL, '{}');
"""


def _migrate(url: str, target: str, downgrade: bool = False) -> None:
    engine = create_registry_engine(url)
    with engine.begin() as connection:
        config = alembic_config(connection)
        (command.downgrade if downgrade else command.upgrade)(config, target)
    engine.dispose()


def test_upgrade_keeps_rows_and_downgrade_restores_them(database_url: str) -> None:
    _migrate(database_url, "0001")
    engine = create_registry_engine(database_url)
    with engine.begin() as connection:
        for statement in ROWS_0001.split(";"):
            if statement.strip():
                connection.execute(text(statement))
    # The head model (read_document) needs the later migrations too; 0002 is what moves the rows.
    _migrate(database_url, "head")

    document = read_document(engine)
    audio = document.topic("device.audio.raw")
    assert audio is not None and audio.table is not None
    assert (audio.partitions, audio.retention_days, audio.json_schema) == (3, 7, {"type": "object"})
    assert [e.path for e in audio.api_endpoints] == ["/audio/upload"]
    assert audio.table.upsert_key == ("device_id", "recorded_at")
    assert audio.table.max_lag_messages == 1000
    assert [(m.column, m.required, m.default) for m in audio.table.mappings] == [
        ("device_id", True, None),
        ("recorded_at", True, None),
        ("sample_rate", False, 16000),
    ]
    assert document.flows[0].stages[0].outputs == ("media.audio.vad",)
    with engine.connect() as connection:
        config = connection.execute(
            text("SELECT id, topic_name, upsert_key FROM topic_table_configs")
        ).one()
        assert tuple(config) == (4, "device.audio.raw", "device_id, recorded_at")
        ids = connection.execute(text("SELECT id FROM kafka_topics ORDER BY id")).scalars().all()
        assert ids == [7, 9]
        # New rows get fresh ids after the kept ones (sequences moved on PostgreSQL).
        connection.execute(text("INSERT INTO kafka_topics (topic_name) VALUES ('x.y')"))
        assert (
            connection.execute(
                text("SELECT id FROM kafka_topics WHERE topic_name = 'x.y'")
            ).scalar_one()
            == 10
        )
        connection.rollback()

    _migrate(database_url, "0001", downgrade=True)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.id, m.table_config_id, m.position, m.column_name, c.upsert_key "
                "FROM topic_field_mappings m "
                "JOIN topic_table_configs c ON c.id = m.table_config_id "
                "ORDER BY m.id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (10, 4, 0, "device_id", '["device_id", "recorded_at"]'),
        (11, 4, 1, "recorded_at", '["device_id", "recorded_at"]'),
        (12, 4, 2, "sample_rate", '["device_id", "recorded_at"]'),
    ]
    _migrate(database_url, "head")
    assert read_document(engine) == document
    engine.dispose()
