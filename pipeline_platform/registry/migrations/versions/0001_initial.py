"""Initial registry schema: the tables of spec §2 and the views for SQL users.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V_ACTIVE_TOPICS = """
CREATE VIEW v_active_topics AS
SELECT
    t.id AS topic_id,
    t.name AS topic,
    t.category AS category,
    t.source AS source,
    t.datatype AS datatype,
    t.description AS description,
    t.partitions AS partitions,
    t.retention_days AS retention_days,
    c.data_source AS data_source,
    c.schema_name AS schema_name,
    c.table_name AS table_name
FROM kafka_topics t
LEFT JOIN topic_table_configs c ON c.topic_id = t.id
WHERE t.active
"""

V_TOPIC_DEPENDENCIES = """
CREATE VIEW v_topic_dependencies AS
SELECT
    src.name AS source_topic,
    f.name AS flow,
    s.name AS stage,
    s.service_name AS service,
    s.stage_order AS stage_order,
    dst.name AS target_topic,
    o.role AS target_role
FROM pipeline_stage_topics i
JOIN pipeline_stage_topics o ON o.stage_id = i.stage_id AND o.role IN ('output', 'error')
JOIN pipeline_stages s ON s.id = i.stage_id
JOIN pipeline_flows f ON f.id = s.flow_id
JOIN kafka_topics src ON src.id = i.topic_id
JOIN kafka_topics dst ON dst.id = o.topic_id
WHERE i.role = 'input'
"""


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False)


def _parent(table: str, column: str, parent: str) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey(f"{parent}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{parent}"),
        nullable=False,
    )


def upgrade() -> None:
    """Create the registry tables and views."""
    op.create_table(
        "kafka_topics",
        _id(),
        sa.Column("name", sa.String(249), nullable=False),
        sa.Column("category", sa.String(255), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("datatype", sa.String(255), nullable=False),
        _text("description"),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kafka_topics"),
        sa.UniqueConstraint("name", name="uq_kafka_topics_name"),
    )
    op.create_table(
        "kafka_topic_schemas",
        _id(),
        _parent("kafka_topic_schemas", "topic_id", "kafka_topics"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kafka_topic_schemas"),
        sa.UniqueConstraint("topic_id", "version", name="uq_kafka_topic_schemas_topic_id_version"),
    )
    op.create_table(
        "topic_api_endpoints",
        _id(),
        _parent("topic_api_endpoints", "topic_id", "kafka_topics"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_topic_api_endpoints"),
        sa.UniqueConstraint(
            "topic_id", "position", name="uq_topic_api_endpoints_topic_id_position"
        ),
        sa.UniqueConstraint(
            "topic_id", "method", "path", name="uq_topic_api_endpoints_topic_id_method_path"
        ),
    )
    op.create_table(
        "topic_table_configs",
        _id(),
        _parent("topic_table_configs", "topic_id", "kafka_topics"),
        sa.Column("data_source", sa.String(63), nullable=False),
        sa.Column("schema_name", sa.String(63), nullable=True),
        sa.Column("table_name", sa.String(63), nullable=False),
        _text("upsert_key"),
        sa.Column("time_column", sa.String(63), nullable=True),
        sa.Column("max_lag_messages", sa.Integer(), nullable=True),
        sa.Column("freshness_minutes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_topic_table_configs"),
        sa.UniqueConstraint("topic_id", name="uq_topic_table_configs_topic_id"),
        sa.UniqueConstraint(
            "data_source",
            "schema_name",
            "table_name",
            name="uq_topic_table_configs_data_source_schema_name_table_name",
        ),
    )
    op.create_table(
        "topic_field_mappings",
        _id(),
        _parent("topic_field_mappings", "table_config_id", "topic_table_configs"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source_path", sa.String(1024), nullable=False),
        sa.Column("column_name", sa.String(63), nullable=False),
        sa.Column("data_type", sa.String(20), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("default_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_topic_field_mappings"),
        sa.UniqueConstraint(
            "table_config_id", "position", name="uq_topic_field_mappings_table_config_id_position"
        ),
        sa.UniqueConstraint(
            "table_config_id",
            "column_name",
            name="uq_topic_field_mappings_table_config_id_column_name",
        ),
    )
    op.create_table(
        "pipeline_flows",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        _text("description"),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_flows"),
        sa.UniqueConstraint("name", name="uq_pipeline_flows_name"),
    )
    op.create_table(
        "pipeline_stages",
        _id(),
        _parent("pipeline_stages", "flow_id", "pipeline_flows"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("service_name", sa.String(128), nullable=False),
        _text("description"),
        sa.Column("stage_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_stages"),
        sa.UniqueConstraint("flow_id", "name", name="uq_pipeline_stages_flow_id_name"),
        sa.UniqueConstraint(
            "flow_id", "stage_order", name="uq_pipeline_stages_flow_id_stage_order"
        ),
    )
    op.create_index("ix_pipeline_stages_service_name", "pipeline_stages", ["service_name"])
    op.create_table(
        "pipeline_stage_topics",
        _id(),
        _parent("pipeline_stage_topics", "stage_id", "pipeline_stages"),
        _parent("pipeline_stage_topics", "topic_id", "kafka_topics"),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_stage_topics"),
        sa.UniqueConstraint(
            "stage_id", "role", "topic_id", name="uq_pipeline_stage_topics_stage_id_role_topic_id"
        ),
        sa.UniqueConstraint(
            "stage_id", "role", "position", name="uq_pipeline_stage_topics_stage_id_role_position"
        ),
        sa.CheckConstraint(
            "role IN ('input', 'output', 'error')", name="ck_pipeline_stage_topics_role"
        ),
    )
    op.create_index("ix_pipeline_stage_topics_topic_id", "pipeline_stage_topics", ["topic_id"])
    op.create_table(
        "data_sources",
        _id(),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("url_env", sa.String(255), nullable=False),
        _text("description"),
        sa.PrimaryKeyConstraint("id", name="pk_data_sources"),
        sa.UniqueConstraint("name", name="uq_data_sources_name"),
    )
    op.create_table(
        "modules",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        _text("description"),
        _text("config_schema"),
        sa.PrimaryKeyConstraint("id", name="pk_modules"),
        sa.UniqueConstraint("name", name="uq_modules_name"),
        sa.CheckConstraint(
            "kind IN ('extractor', 'transformer', 'loader')", name="ck_modules_kind"
        ),
    )
    op.create_table(
        "pipelines",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        _text("description"),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        _text("graph"),
        sa.PrimaryKeyConstraint("id", name="pk_pipelines"),
        sa.UniqueConstraint("name", name="uq_pipelines_name"),
    )
    op.create_table(
        "registry_revisions",
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        _text("summary"),
        sa.PrimaryKeyConstraint("revision", name="pk_registry_revisions"),
    )
    op.execute(V_ACTIVE_TOPICS)
    op.execute(V_TOPIC_DEPENDENCIES)


def downgrade() -> None:
    """Drop the registry views and tables."""
    op.execute("DROP VIEW v_topic_dependencies")
    op.execute("DROP VIEW v_active_topics")
    for table in (
        "registry_revisions",
        "pipelines",
        "modules",
        "data_sources",
        "pipeline_stage_topics",
        "pipeline_stages",
        "pipeline_flows",
        "topic_field_mappings",
        "topic_table_configs",
        "topic_api_endpoints",
        "kafka_topic_schemas",
        "kafka_topics",
    ):
        op.drop_table(table)
