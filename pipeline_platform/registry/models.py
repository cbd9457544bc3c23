"""SQLAlchemy models of the registry tables (spec §2).

The tables keep the names users already know. Every table has an integer surrogate key; child rows
reference their parent with ``ON DELETE CASCADE``. JSON values (schemas, upsert keys, defaults,
pipeline graphs, module config schemas, revision summaries) are stored as JSON text so that the
same schema works on SQLite and PostgreSQL and key order is preserved for a byte-identical export.

The migration ``0001_initial`` creates these tables and ``0002_sql_names`` gives the topic,
table and mapping tables the column names of the old consumer (spec §2.2: ``topic_name``,
``source_field_path``, ``target_column``, ``is_required``, a comma-separated ``upsert_key``,
names instead of numeric foreign keys, defaults for the columns SQL users omit) and records a
content fingerprint and the document with each revision. The models are for typed queries and
for tests that compare the migrated schema with the declared one.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STAGE_ROLES = ("input", "output", "error")


class Base(DeclarativeBase):
    """Declarative base of the registry models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _parent(column: str) -> Mapped[int]:
    return mapped_column(Integer, ForeignKey(column, ondelete="CASCADE"), nullable=False)


class KafkaTopic(Base):
    """A Kafka topic; the columns SQL users insert have defaults (spec §2.2)."""

    __tablename__ = "kafka_topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_name: Mapped[str] = mapped_column(String(249), nullable=False, unique=True)
    category: Mapped[str] = mapped_column(String(255), nullable=False, server_default="")
    source: Mapped[str] = mapped_column(String(255), nullable=False, server_default="")
    datatype: Mapped[str] = mapped_column(String(255), nullable=False, server_default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    partitions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=true())


class KafkaTopicSchema(Base):
    """One version of a topic's JSON Schema; a NULL ``schema_json`` records its removal."""

    __tablename__ = "kafka_topic_schemas"
    __table_args__ = (UniqueConstraint("topic_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = _parent("kafka_topics.id")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    schema_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TopicApiEndpoint(Base):
    """An HTTP endpoint that produces into a topic."""

    __tablename__ = "topic_api_endpoints"
    __table_args__ = (
        UniqueConstraint("topic_id", "position"),
        UniqueConstraint("topic_id", "method", "path"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = _parent("kafka_topics.id")
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    path: Mapped[str] = mapped_column(String(512), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)


class TopicTableConfig(Base):
    """The table a topic is ingested into (at most one per topic), keyed by topic name.

    ``upsert_key`` is a comma-separated column list (empty: append only), as the old consumer's
    SQL users write it; a NULL ``schema_name`` means ``public``.
    """

    __tablename__ = "topic_table_configs"
    __table_args__ = (UniqueConstraint("data_source", "schema_name", "table_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_name: Mapped[str] = mapped_column(
        String(249),
        ForeignKey("kafka_topics.topic_name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
        unique=True,
    )
    data_source: Mapped[str] = mapped_column(String(63), nullable=False, server_default="warehouse")
    schema_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    table_name: Mapped[str] = mapped_column(String(63), nullable=False)
    upsert_key: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    time_column: Mapped[str | None] = mapped_column(String(63), nullable=True)
    max_lag_messages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_lag_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_dead_letter_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    freshness_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TopicFieldMapping(Base):
    """One source field mapped to one column of a topic's table, keyed by topic name.

    ``position`` orders the mappings of a table; rows inserted in SQL without it come after,
    in insertion (id) order.
    """

    __tablename__ = "topic_field_mappings"
    __table_args__ = (UniqueConstraint("topic_name", "target_column"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_name: Mapped[str] = mapped_column(
        String(249),
        ForeignKey("topic_table_configs.topic_name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    )
    table_name: Mapped[str] = mapped_column(String(63), nullable=False)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_field_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    target_column: Mapped[str] = mapped_column(String(63), nullable=False)
    data_type: Mapped[str] = mapped_column(String(20), nullable=False)
    is_required: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    default_value: Mapped[str | None] = mapped_column(Text, nullable=True)


class PipelineFlow(Base):
    """A processing flow."""

    __tablename__ = "pipeline_flows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    priority: Mapped[str] = mapped_column(String(20), nullable=False, default="normal")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class PipelineStage(Base):
    """A stage of a flow: a service reading and writing topics."""

    __tablename__ = "pipeline_stages"
    __table_args__ = (
        UniqueConstraint("flow_id", "name"),
        UniqueConstraint("flow_id", "stage_order"),
        Index(None, "service_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int] = _parent("pipeline_flows.id")
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    service_name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    stage_order: Mapped[int] = mapped_column(Integer, nullable=False)


class PipelineStageTopic(Base):
    """A topic a stage reads (``input``) or writes (``output``, ``error``)."""

    __tablename__ = "pipeline_stage_topics"
    __table_args__ = (
        UniqueConstraint("stage_id", "role", "topic_id"),
        UniqueConstraint("stage_id", "role", "position"),
        CheckConstraint("role IN ('input', 'output', 'error')", name="role"),
        Index(None, "topic_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage_id: Mapped[int] = _parent("pipeline_stages.id")
    topic_id: Mapped[int] = _parent("kafka_topics.id")
    role: Mapped[str] = mapped_column(String(10), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class DataSourceRow(Base):
    """A named database connection; the URL is read from ``url_env``, never stored."""

    __tablename__ = "data_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    url_env: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")


class ModuleRow(Base):
    """A module of the catalog (extractor, transformer or loader)."""

    __tablename__ = "modules"
    __table_args__ = (
        CheckConstraint("kind IN ('extractor', 'transformer', 'loader')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    config_schema: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    category: Mapped[str] = mapped_column(String(63), nullable=False, default="")
    version: Mapped[str] = mapped_column(String(32), nullable=False, default="1.0.0")
    icon: Mapped[str] = mapped_column(String(63), nullable=False, default="")
    documentation_url: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    tags: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    required_connections: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    input_schema: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    output_schema: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class ModulePreset(Base):
    """A named module configuration (``presets:`` in the registry file)."""

    __tablename__ = "module_presets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    module: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    config: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class PipelineRow(Base):
    """A batch or realtime pipeline: a graph of module nodes (JSON text)."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    mode: Mapped[str] = mapped_column(String(20), nullable=False)
    schedule: Mapped[str | None] = mapped_column(String(255), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    graph: Mapped[str] = mapped_column(Text, nullable=False)


class RegistryRevision(Base):
    """One registry revision: who changed what, when, from which source."""

    __tablename__ = "registry_revisions"

    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)


kafka_topics = cast(Table, KafkaTopic.__table__)
kafka_topic_schemas = cast(Table, KafkaTopicSchema.__table__)
topic_api_endpoints = cast(Table, TopicApiEndpoint.__table__)
topic_table_configs = cast(Table, TopicTableConfig.__table__)
topic_field_mappings = cast(Table, TopicFieldMapping.__table__)
pipeline_flows = cast(Table, PipelineFlow.__table__)
pipeline_stages = cast(Table, PipelineStage.__table__)
pipeline_stage_topics = cast(Table, PipelineStageTopic.__table__)
data_sources = cast(Table, DataSourceRow.__table__)
modules = cast(Table, ModuleRow.__table__)
module_presets = cast(Table, ModulePreset.__table__)
pipelines = cast(Table, PipelineRow.__table__)
registry_revisions = cast(Table, RegistryRevision.__table__)
