"""The SQL statements of spec §2.2, verbatim, as the old consumer's users run them."""

from __future__ import annotations

import subprocess

INSERTS = """\
INSERT INTO kafka_topics (topic_name, category, source, datatype, description, retention_days)
VALUES ('device.sensor.new.raw', 'device', 'sensor', 'new', 'New sensor type', 30);
INSERT INTO topic_table_configs (topic_name, table_name, upsert_key)
VALUES ('device.sensor.new.raw', 'device_sensor_new_raw', 'device_id, timestamp');
INSERT INTO topic_field_mappings (topic_name, table_name, source_field_path, target_column, data_type)
VALUES ('device.sensor.new.raw', 'device_sensor_new_raw', 'device_id', 'device_id', 'string'),
       ('device.sensor.new.raw', 'device_sensor_new_raw', 'timestamp', 'timestamp', 'timestamp'),
       ('device.sensor.new.raw', 'device_sensor_new_raw', 'value', 'sensor_value', 'float');
"""  # noqa: E501 (verbatim)

QUERIES = (
    "SELECT * FROM v_active_topics ORDER BY topic_name;",
    "SELECT * FROM topic_field_mappings WHERE topic_name = 'device.network.wifi.raw'\n"
    "ORDER BY is_required DESC, target_column;",
    "SELECT * FROM v_topic_dependencies WHERE source_topic = 'device.audio.raw';",
)


def run_sql(registry_url: str, sql: str) -> str:
    """Run ``sql`` with the database's own client (sqlite3 or psql); return its output.

    Raises:
        subprocess.CalledProcessError: when a statement fails.
    """
    if registry_url.startswith("sqlite:///"):
        command = ["sqlite3", "-bail", "-header", registry_url.removeprefix("sqlite:///")]
    else:
        conninfo = registry_url.replace("postgresql+psycopg://", "postgresql://")
        command = ["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", conninfo]
    done = subprocess.run(
        command, input=sql, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout
