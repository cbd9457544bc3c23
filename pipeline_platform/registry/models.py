"""SQLAlchemy models of the registry tables (spec §2).

The tables keep the names users already know. Every table has an integer surrogate key; child rows
reference their parent with ``ON DELETE CASCADE``. JSON values (schemas, upsert keys, defaults,
pipeline graphs, module config schemas, revision summaries) are stored as JSON text so that the
same schema works on SQLite and PostgreSQL and key order is preserved for a byte-identical export.

The migration ``0001_initial`` creates these tables and ``0002_sql_names`` gives the topic,
table and mapping tables the column names of the old consumer (spec §2.2: ``topic_name``,
``source_field_path``, ``target_column``, ``is_required``, a comma-separated ``upsert_key``,
names instead of numeric foreign keys, defaults for the columns SQL users omit) and records a
content fingerprint and the document with each revision. The tables are for typed queries and
for tests that compare the migrated schema with the declared one. They are SQLAlchemy Core
``Table`` objects: reading the registry (every definitions load, every ``dagster asset
materialize``) then needs no ``sqlalchemy.orm``, whose import alone costs about 0.14 s.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STAGE_ROLES = ("input", "output", "error")

#: The registry schema (Alembic compares migrations with it).
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _parent(name: str, column: str) -> Column[int]:
    return Column(name, Integer, ForeignKey(column, ondelete="CASCADE"), nullable=False)


#: A Kafka topic; the columns SQL users insert have defaults (spec §2.2).
kafka_topics = Table(
    "kafka_topics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("topic_name", String(249), nullable=False, unique=True),
    Column("category", String(255), nullable=False, server_default=""),
    Column("source", String(255), nullable=False, server_default=""),
    Column("datatype", String(255), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("partitions", Integer, nullable=False, server_default="1"),
    Column("retention_days", Integer, nullable=True),
    Column("active", Boolean, nullable=False, server_default=true()),
)


#: One version of a topic's JSON Schema; a NULL ``schema_json`` records its removal.
kafka_topic_schemas = Table(
    "kafka_topic_schemas",
    metadata,
    Column("id", Integer, primary_key=True),
    _parent("topic_id", "kafka_topics.id"),
    Column("version", Integer, nullable=False),
    Column("schema_json", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("topic_id", "version"),
)


#: An HTTP endpoint that produces into a topic.
topic_api_endpoints = Table(
    "topic_api_endpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    _parent("topic_id", "kafka_topics.id"),
    Column("position", Integer, nullable=False),
    Column("path", String(512), nullable=False),
    Column("method", String(10), nullable=False),
    UniqueConstraint("topic_id", "position"),
    UniqueConstraint("topic_id", "method", "path"),
)


#: The table a topic is ingested into (at most one per topic), keyed by topic name.
#:
#: ``upsert_key`` is a comma-separated column list (empty: append only), as the old consumer's
#: SQL users write it; a NULL ``schema_name`` means ``public``.
topic_table_configs = Table(
    "topic_table_configs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "topic_name",
        String(249),
        ForeignKey("kafka_topics.topic_name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("data_source", String(63), nullable=False, server_default="warehouse"),
    Column("schema_name", String(63), nullable=True),
    Column("table_name", String(63), nullable=False),
    Column("upsert_key", Text, nullable=False, server_default=""),
    Column("time_column", String(63), nullable=True),
    Column("max_lag_messages", Integer, nullable=True),
    Column("max_lag_seconds", Integer, nullable=True),
    Column("max_dead_letter_ratio", Float, nullable=True),
    Column("freshness_minutes", Integer, nullable=True),
    UniqueConstraint("data_source", "schema_name", "table_name"),
)


#: One source field mapped to one column of a topic's table, keyed by topic name.
#:
#: ``position`` orders the mappings of a table; rows inserted in SQL without it come after,
#: in insertion (id) order.
topic_field_mappings = Table(
    "topic_field_mappings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "topic_name",
        String(249),
        ForeignKey("topic_table_configs.topic_name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    Column("table_name", String(63), nullable=False),
    Column("position", Integer, nullable=True),
    Column("source_field_path", String(1024), nullable=False),
    Column("target_column", String(63), nullable=False),
    Column("data_type", String(20), nullable=False),
    Column("is_required", Boolean, nullable=False, server_default=false()),
    Column("default_value", Text, nullable=True),
    UniqueConstraint("topic_name", "target_column"),
)


#: A processing flow.
pipeline_flows = Table(
    "pipeline_flows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("priority", String(20), nullable=False, default="normal"),
    Column("active", Boolean, nullable=False, default=True),
)


#: A stage of a flow: a service reading and writing topics.
pipeline_stages = Table(
    "pipeline_stages",
    metadata,
    Column("id", Integer, primary_key=True),
    _parent("flow_id", "pipeline_flows.id"),
    Column("name", String(128), nullable=False),
    Column("service_name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("stage_order", Integer, nullable=False),
    UniqueConstraint("flow_id", "name"),
    UniqueConstraint("flow_id", "stage_order"),
    Index(None, "service_name"),
)


#: A topic a stage reads (``input``) or writes (``output``, ``error``).
pipeline_stage_topics = Table(
    "pipeline_stage_topics",
    metadata,
    Column("id", Integer, primary_key=True),
    _parent("stage_id", "pipeline_stages.id"),
    _parent("topic_id", "kafka_topics.id"),
    Column("role", String(10), nullable=False),
    Column("position", Integer, nullable=False),
    UniqueConstraint("stage_id", "role", "topic_id"),
    UniqueConstraint("stage_id", "role", "position"),
    CheckConstraint("role IN ('input', 'output', 'error')", name="role"),
    Index(None, "topic_id"),
)


#: A named database connection; the URL is read from ``url_env``, never stored.
data_sources = Table(
    "data_sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("url_env", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
)


#: A module of the catalog (extractor, transformer or loader).
modules = Table(
    "modules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("config_schema", Text, nullable=False),
    Column("display_name", String(255), nullable=False, default=""),
    Column("category", String(63), nullable=False, default=""),
    Column("version", String(32), nullable=False, default="1.0.0"),
    Column("icon", String(63), nullable=False, default=""),
    Column("documentation_url", String(1024), nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),
    Column("required_connections", Text, nullable=False, default="[]"),
    Column("input_schema", Text, nullable=False, default="{}"),
    Column("output_schema", Text, nullable=False, default="{}"),
    CheckConstraint("kind IN ('extractor', 'transformer', 'loader')", name="kind"),
)


#: A named module configuration (``presets:`` in the registry file).
module_presets = Table(
    "module_presets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("module", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("config", Text, nullable=False, default="{}"),
)


#: A batch or realtime pipeline: a graph of module nodes (JSON text).
pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("mode", String(20), nullable=False),
    Column("schedule", String(255), nullable=True),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("status", String(20), nullable=False),
    Column("graph", Text, nullable=False),
)


#: One registry revision: who changed what, when, from which source.
registry_revisions = Table(
    "registry_revisions",
    metadata,
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("source", Text, nullable=True),
    Column("summary", Text, nullable=False),
    Column("fingerprint", String(64), nullable=True),
    Column("content", Text, nullable=True),
)
