"""The old consumer's SQL names for topics, tables and mappings (spec §2.2); revision content.

``kafka_topics.name`` becomes ``topic_name``; ``topic_table_configs`` and
``topic_field_mappings`` reference their topic by name (``topic_name``; mappings also carry
``table_name``) instead of numeric ids; mapping columns become ``source_field_path``,
``target_column``, ``is_required``; ``upsert_key`` becomes a comma-separated list; the columns
SQL users omit get defaults (data source ``warehouse``, ``is_required`` false, ``partitions`` 1,
``active`` true, empty texts). Revisions record the content fingerprint and the document.

Existing data is kept: the topic tables and their children are read, dropped (children first,
so SQLite's foreign-key actions delete nothing) and created again with the same ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Children first: dropping them before their parent leaves no foreign-key action to run.
REBUILT = (
    "pipeline_stage_topics",
    "topic_field_mappings",
    "topic_table_configs",
    "topic_api_endpoints",
    "kafka_topic_schemas",
    "kafka_topics",
)

V_ACTIVE_TOPICS = """
CREATE VIEW v_active_topics AS
SELECT
    t.id AS topic_id,
    t.{name} AS topic_name,
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
LEFT JOIN topic_table_configs c ON {join}
WHERE t.active
"""

V_TOPIC_DEPENDENCIES = """
CREATE VIEW v_topic_dependencies AS
SELECT
    src.{name} AS source_topic,
    f.name AS flow,
    s.name AS stage,
    s.service_name AS service,
    s.stage_order AS stage_order,
    dst.{name} AS target_topic,
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


def _fk(table: str, column: str, parent: str, parent_column: str = "id") -> sa.ForeignKey:
    return sa.ForeignKey(
        f"{parent}.{parent_column}",
        ondelete="CASCADE",
        onupdate="CASCADE" if parent_column != "id" else None,
        name=f"fk_{table}_{column}_{parent}",
    )


def _topics_table(sql_names: bool) -> None:
    text_default: dict[str, Any] = {"server_default": ""} if sql_names else {}
    op.create_table(
        "kafka_topics",
        _id(),
        sa.Column("topic_name" if sql_names else "name", sa.String(249), nullable=False),
        sa.Column("category", sa.String(255), nullable=False, **text_default),
        sa.Column("source", sa.String(255), nullable=False, **text_default),
        sa.Column("datatype", sa.String(255), nullable=False, **text_default),
        sa.Column("description", sa.Text(), nullable=False, **text_default),
        sa.Column(
            "partitions", sa.Integer(), nullable=False, server_default="1" if sql_names else None
        ),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column(
            "active", sa.Boolean(), nullable=False, server_default=sa.true() if sql_names else None
        ),
        sa.PrimaryKeyConstraint("id", name="pk_kafka_topics"),
        sa.UniqueConstraint(
            "topic_name" if sql_names else "name",
            name="uq_kafka_topics_topic_name" if sql_names else "uq_kafka_topics_name",
        ),
    )


def _unchanged_children() -> None:
    """The topic's children whose shape 0002 does not change (as created by 0001)."""
    op.create_table(
        "kafka_topic_schemas",
        _id(),
        sa.Column(
            "topic_id",
            sa.Integer(),
            _fk("kafka_topic_schemas", "topic_id", "kafka_topics"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kafka_topic_schemas"),
        sa.UniqueConstraint("topic_id", "version", name="uq_kafka_topic_schemas_topic_id_version"),
    )
    op.create_table(
        "topic_api_endpoints",
        _id(),
        sa.Column(
            "topic_id",
            sa.Integer(),
            _fk("topic_api_endpoints", "topic_id", "kafka_topics"),
            nullable=False,
        ),
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
        "pipeline_stage_topics",
        _id(),
        sa.Column(
            "stage_id",
            sa.Integer(),
            _fk("pipeline_stage_topics", "stage_id", "pipeline_stages"),
            nullable=False,
        ),
        sa.Column(
            "topic_id",
            sa.Integer(),
            _fk("pipeline_stage_topics", "topic_id", "kafka_topics"),
            nullable=False,
        ),
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


def _table_configs(sql_names: bool) -> None:
    key: sa.Column[Any]
    if sql_names:
        key = sa.Column(
            "topic_name",
            sa.String(249),
            _fk("topic_table_configs", "topic_name", "kafka_topics", "topic_name"),
            nullable=False,
        )
    else:
        key = sa.Column(
            "topic_id",
            sa.Integer(),
            _fk("topic_table_configs", "topic_id", "kafka_topics"),
            nullable=False,
        )
    op.create_table(
        "topic_table_configs",
        _id(),
        key,
        sa.Column(
            "data_source",
            sa.String(63),
            nullable=False,
            server_default="warehouse" if sql_names else None,
        ),
        sa.Column("schema_name", sa.String(63), nullable=True),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column(
            "upsert_key", sa.Text(), nullable=False, server_default="" if sql_names else None
        ),
        sa.Column("time_column", sa.String(63), nullable=True),
        sa.Column("max_lag_messages", sa.Integer(), nullable=True),
        sa.Column("freshness_minutes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_topic_table_configs"),
        sa.UniqueConstraint(key.name, name=f"uq_topic_table_configs_{key.name}"),
        sa.UniqueConstraint(
            "data_source",
            "schema_name",
            "table_name",
            name="uq_topic_table_configs_data_source_schema_name_table_name",
        ),
    )


def _sql_name_tables() -> None:
    _table_configs(sql_names=True)
    op.create_table(
        "topic_field_mappings",
        _id(),
        sa.Column(
            "topic_name",
            sa.String(249),
            _fk("topic_field_mappings", "topic_name", "topic_table_configs", "topic_name"),
            nullable=False,
        ),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("source_field_path", sa.String(1024), nullable=False),
        sa.Column("target_column", sa.String(63), nullable=False),
        sa.Column("data_type", sa.String(20), nullable=False),
        sa.Column("is_required", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("default_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_topic_field_mappings"),
        sa.UniqueConstraint(
            "topic_name", "target_column", name="uq_topic_field_mappings_topic_name_target_column"
        ),
    )


def _id_tables() -> None:
    """``topic_table_configs`` and ``topic_field_mappings`` as 0001 created them."""
    _table_configs(sql_names=False)
    op.create_table(
        "topic_field_mappings",
        _id(),
        sa.Column(
            "table_config_id",
            sa.Integer(),
            _fk("topic_field_mappings", "table_config_id", "topic_table_configs"),
            nullable=False,
        ),
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


def _read_all(bind: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    saved: dict[str, list[dict[str, Any]]] = {}
    for name in REBUILT:
        table = sa.Table(name, sa.MetaData(), autoload_with=bind)  # typed values (datetimes)
        saved[name] = [dict(row._mapping) for row in bind.execute(sa.select(table))]
    return saved


def _insert(bind: sa.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = sa.Table(name, sa.MetaData(), autoload_with=bind)
    bind.execute(table.insert(), rows)
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"(SELECT max(id) FROM {name}))"
            )
        )


def _rebuild(to_sql_names: bool) -> None:
    bind = op.get_bind()
    op.execute("DROP VIEW v_topic_dependencies")
    op.execute("DROP VIEW v_active_topics")
    saved = _read_all(bind)
    for name in REBUILT:
        op.drop_table(name)
    _topics_table(to_sql_names)
    _unchanged_children()
    if to_sql_names:
        _sql_name_tables()
    else:
        _id_tables()

    old_name, new_name = ("name", "topic_name") if to_sql_names else ("topic_name", "name")
    topics = [
        {**{k: v for k, v in r.items() if k != old_name}, new_name: r[old_name]}
        for r in saved["kafka_topics"]
    ]
    _insert(bind, "kafka_topics", topics)
    for name in ("kafka_topic_schemas", "topic_api_endpoints", "pipeline_stage_topics"):
        _insert(bind, name, saved[name])
    configs, mappings = (_to_sql_names if to_sql_names else _to_ids)(saved)
    _insert(bind, "topic_table_configs", configs)
    _insert(bind, "topic_field_mappings", mappings)
    if to_sql_names:
        op.execute(V_ACTIVE_TOPICS.format(name="topic_name", join="c.topic_name = t.topic_name"))
        op.execute(V_TOPIC_DEPENDENCIES.format(name="topic_name"))
    else:
        op.execute(
            V_ACTIVE_TOPICS.replace("AS topic_name", "AS topic").format(
                name="name", join="c.topic_id = t.id"
            )
        )
        op.execute(V_TOPIC_DEPENDENCIES.format(name="name"))


def _to_sql_names(saved: dict[str, list[dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    topic_names = {r["id"]: r["name"] for r in saved["kafka_topics"]}
    configs: list[dict[str, Any]] = []
    by_config: dict[int, dict[str, Any]] = {}
    for row in saved["topic_table_configs"]:
        config = {k: v for k, v in row.items() if k != "topic_id"}
        config["topic_name"] = topic_names[row["topic_id"]]
        config["upsert_key"] = ", ".join(json.loads(row["upsert_key"] or "[]"))
        configs.append(config)
        by_config[row["id"]] = config
    mappings = [
        {
            "id": row["id"],
            "topic_name": by_config[row["table_config_id"]]["topic_name"],
            "table_name": by_config[row["table_config_id"]]["table_name"],
            "position": row["position"],
            "source_field_path": row["source_path"],
            "target_column": row["column_name"],
            "data_type": row["data_type"],
            "is_required": row["required"],
            "default_value": row["default_value"],
        }
        for row in saved["topic_field_mappings"]
    ]
    return configs, mappings


def _to_ids(saved: dict[str, list[dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    topic_ids = {r["topic_name"]: r["id"] for r in saved["kafka_topics"]}
    configs: list[dict[str, Any]] = []
    config_ids: dict[str, int] = {}
    for row in saved["topic_table_configs"]:
        config = {k: v for k, v in row.items() if k != "topic_name"}
        config["topic_id"] = topic_ids[row["topic_name"]]
        key = [part.strip() for part in (row["upsert_key"] or "").split(",") if part.strip()]
        config["upsert_key"] = json.dumps(key)
        configs.append(config)
        config_ids[row["topic_name"]] = row["id"]
    ordered = sorted(
        saved["topic_field_mappings"],
        key=lambda r: (r["topic_name"], r["position"] is None, r["position"] or 0, r["id"]),
    )
    mappings: list[dict[str, Any]] = []
    position: dict[str, int] = {}
    for row in ordered:
        index = position[row["topic_name"]] = position.get(row["topic_name"], -1) + 1
        mappings.append(
            {
                "id": row["id"],
                "table_config_id": config_ids[row["topic_name"]],
                "position": index,
                "source_path": row["source_field_path"],
                "column_name": row["target_column"],
                "data_type": row["data_type"],
                "required": row["is_required"],
                "default_value": row["default_value"],
            }
        )
    return configs, mappings


def upgrade() -> None:
    """Rename to the SQL names, keep every row, add revision fingerprint and content."""
    _rebuild(to_sql_names=True)
    op.add_column("registry_revisions", sa.Column("fingerprint", sa.String(64), nullable=True))
    op.add_column("registry_revisions", sa.Column("content", sa.Text(), nullable=True))


def downgrade() -> None:
    """Back to the 0001 names and numeric foreign keys, keeping every row."""
    with op.batch_alter_table("registry_revisions") as batch:
        batch.drop_column("content")
        batch.drop_column("fingerprint")
    _rebuild(to_sql_names=False)
