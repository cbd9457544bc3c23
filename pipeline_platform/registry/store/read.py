"""Reading the registry: a handful of SELECTs assembled into a canonical document (spec §2).

An entity whose stored rows no longer validate is left out and reported
(:class:`~pipeline_platform.registry.store.invalid_rows.InvalidRows`), never fatal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from pipeline_platform.registry.document import (
    DataSource,
    Flow,
    Pipeline,
    Preset,
    RegistryDocument,
    Topic,
)
from pipeline_platform.registry.gc_pause import gc_paused
from pipeline_platform.registry.models import (
    data_sources,
    kafka_topic_schemas,
    kafka_topics,
    module_presets,
    pipeline_flows,
    pipeline_stage_topics,
    pipeline_stages,
    pipelines,
    registry_revisions,
    topic_api_endpoints,
    topic_field_mappings,
    topic_table_configs,
)
from pipeline_platform.registry.store.invalid_rows import InvalidRows
from pipeline_platform.registry.store.rows import loads_json, split_key

_LAST = 2**31 - 1  # mappings inserted in SQL without a position come last


@dataclass(frozen=True)
class StoredState:
    """The stored registry with the ids needed to update it."""

    document: RegistryDocument
    revision: int
    topic_ids: dict[str, int]
    schema_versions: dict[int, int]
    flow_ids: dict[str, int]
    data_source_ids: dict[str, int]
    preset_ids: dict[str, int]
    pipeline_ids: dict[str, int]
    invalid: InvalidRows


def read_state(connection: Connection) -> StoredState:
    execute = connection.execute
    invalid = InvalidRows()
    revision = int(execute(select(func.max(registry_revisions.c.revision))).scalar() or 0)

    latest = (
        select(
            kafka_topic_schemas.c.topic_id,
            func.max(kafka_topic_schemas.c.version).label("version"),
        )
        .group_by(kafka_topic_schemas.c.topic_id)
        .subquery()
    )
    schemas: dict[int, tuple[int, Any]] = {
        row.topic_id: (row.version, loads_json(row.schema_json))
        for row in execute(
            select(
                kafka_topic_schemas.c.topic_id,
                kafka_topic_schemas.c.version,
                kafka_topic_schemas.c.schema_json,
            ).join(
                latest,
                and_(
                    kafka_topic_schemas.c.topic_id == latest.c.topic_id,
                    kafka_topic_schemas.c.version == latest.c.version,
                ),
            )
        )
    }

    endpoints: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in execute(
        select(
            topic_api_endpoints.c.topic_id, topic_api_endpoints.c.path, topic_api_endpoints.c.method
        ).order_by(topic_api_endpoints.c.topic_id, topic_api_endpoints.c.position)
    ):
        endpoints[row.topic_id].append({"path": row.path, "method": row.method})

    mappings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    m = topic_field_mappings.c
    for row in execute(
        select(
            m.topic_name,
            m.source_field_path,
            m.target_column,
            m.data_type,
            m.is_required,
            m.default_value,
        ).order_by(m.topic_name, func.coalesce(m.position, _LAST), m.id)
    ):
        mappings[row.topic_name].append(
            {
                "source": row.source_field_path,
                "column": row.target_column,
                "type": row.data_type,
                "required": bool(row.is_required),
                "default": loads_json(row.default_value),
            }
        )

    tables: dict[str, dict[str, Any]] = {}
    for row in execute(select(topic_table_configs)):
        tables[row.topic_name] = {
            "data_source": row.data_source,
            "schema": row.schema_name,
            "name": row.table_name,
            "upsert_key": split_key(row.upsert_key),
            "time_column": row.time_column,
            "max_lag_messages": row.max_lag_messages,
            "max_lag_seconds": row.max_lag_seconds,
            "max_dead_letter_ratio": row.max_dead_letter_ratio,
            "freshness_minutes": row.freshness_minutes,
            "mappings": mappings.get(row.topic_name, ()),
        }

    topics: list[Topic] = []
    topic_ids: dict[str, int] = {}
    topic_names: dict[int, str] = {}
    for row in execute(select(kafka_topics)):
        topic_ids[row.topic_name] = row.id
        topic_names[row.id] = row.topic_name
        invalid.check(
            topics,
            "topics",
            row.topic_name,
            Topic,
            {
                "name": row.topic_name,
                "category": row.category,
                "source": row.source,
                "datatype": row.datatype,
                "description": row.description,
                "partitions": row.partitions,
                "retention_days": row.retention_days,
                "active": bool(row.active),
                "api_endpoints": endpoints.get(row.id, ()),
                "schema": schemas.get(row.id, (0, None))[1],
                "table": tables.get(row.topic_name),
            },
        )

    roles: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    st = pipeline_stage_topics.c
    for row in execute(
        select(st.stage_id, st.role, st.topic_id).order_by(st.stage_id, st.role, st.position)
    ):
        roles[row.stage_id][row.role].append(topic_names[row.topic_id])

    stages: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in execute(
        select(pipeline_stages).order_by(pipeline_stages.c.flow_id, pipeline_stages.c.stage_order)
    ):
        stage_roles = roles.get(row.id, {})
        stages[row.flow_id].append(
            {
                "name": row.name,
                "service": row.service_name,
                "description": row.description,
                "inputs": stage_roles.get("input", ()),
                "outputs": stage_roles.get("output", ()),
                "errors": stage_roles.get("error", ()),
            }
        )

    flows: list[Flow] = []
    flow_ids: dict[str, int] = {}
    for row in execute(select(pipeline_flows)):
        flow_ids[row.name] = row.id
        invalid.check(
            flows,
            "flows",
            row.name,
            Flow,
            {
                "name": row.name,
                "description": row.description,
                "priority": row.priority,
                "active": bool(row.active),
                "stages": stages.get(row.id, ()),
            },
        )

    sources: list[DataSource] = []
    data_source_ids: dict[str, int] = {}
    for row in execute(select(data_sources)):
        data_source_ids[row.name] = row.id
        invalid.check(
            sources,
            "data_sources",
            row.name,
            DataSource,
            {
                "name": row.name,
                "kind": row.kind,
                "url_env": row.url_env,
                "description": row.description,
            },
        )

    pipeline_list: list[Pipeline] = []
    pipeline_ids: dict[str, int] = {}
    for row in execute(select(pipelines)):
        pipeline_ids[row.name] = row.id
        invalid.check(
            pipeline_list,
            "pipelines",
            row.name,
            Pipeline,
            {
                "name": row.name,
                "description": row.description,
                "mode": row.mode,
                "schedule": row.schedule,
                "timezone": row.timezone,
                "status": row.status,
                "graph": loads_json(row.graph),
            },
        )

    preset_list: list[Preset] = []
    preset_ids: dict[str, int] = {}
    for row in execute(select(module_presets)):
        preset_ids[row.name] = row.id
        data = {"name": row.name, "module": row.module, "description": row.description}
        invalid.check(
            preset_list, "presets", row.name, Preset, {**data, "config": loads_json(row.config)}
        )

    document = RegistryDocument(
        topics=tuple(topics),
        flows=tuple(flows),
        data_sources=tuple(sources),
        presets=tuple(preset_list),
        pipelines=tuple(pipeline_list),
    ).canonical()
    return StoredState(
        document=document,
        revision=revision,
        topic_ids=topic_ids,
        schema_versions={topic_id: version for topic_id, (version, _) in schemas.items()},
        flow_ids=flow_ids,
        data_source_ids=data_source_ids,
        preset_ids=preset_ids,
        pipeline_ids=pipeline_ids,
        invalid=invalid,
    )


def read_document(bind: Engine | Connection, problems: list[str] | None = None) -> RegistryDocument:
    """Read the whole registry as a canonical document (latest schema version of each topic).

    An entity whose stored rows no longer validate (edited by hand in SQL, say) is left out
    rather than failing the whole read; a line saying why goes to ``problems``.

    Args:
        bind: Engine (a connection is opened and closed) or an open connection of the registry.
        problems: Receives one line per entity left out.

    Returns:
        The registry, every top-level list sorted by name.
    """
    with gc_paused():
        if isinstance(bind, Connection):
            state = read_state(bind)
        else:
            with bind.connect() as connection:
                state = read_state(connection)
    if problems is not None:
        problems.extend(state.invalid.problems())
    return state.document


def read_document_and_revision(engine: Engine) -> tuple[RegistryDocument, int]:
    """Read the registry and its revision: the ``base_revision`` of a change computed from it.

    The revision is read first, so a revision committed while the rest is read makes the pair
    look older than it is (a later import with that base is refused), never newer.

    Args:
        engine: Engine of a migrated registry.

    Returns:
        The canonical document and the latest revision (0 before the first import).
    """
    with gc_paused(), engine.connect() as connection:
        state = read_state(connection)
    return state.document, state.revision


def read_document_and_invalid_rows(
    engine: Engine,
) -> tuple[RegistryDocument, dict[str, dict[str, str]]]:
    """Read the registry and the entities left out of it: kind → name → ``where: reason``."""
    with gc_paused(), engine.connect() as connection:
        state = read_state(connection)
    return state.document, {kind: dict(r) for kind, r in state.invalid.reasons.items() if r}


@dataclass(frozen=True)
class RevisionRecord:
    """One entry of the registry history.

    Attributes:
        revision: Revision number (1, 2, ...).
        created_at: When it was recorded (UTC).
        actor: Who made the change.
        source: Where it came from (a file path, a command), if known.
        summary: The diff summary (:meth:`RegistryDiff.summary`).
    """

    revision: int
    created_at: datetime
    actor: str
    source: str | None
    summary: dict[str, Any]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def history(engine: Engine, limit: int | None = None) -> list[RevisionRecord]:
    """Return the registry revisions, newest first.

    Args:
        engine: Engine of a migrated registry database.
        limit: Return at most this many revisions (all when None).
    """
    statement = select(registry_revisions).order_by(registry_revisions.c.revision.desc())
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [
            RevisionRecord(
                revision=row.revision,
                created_at=_as_utc(row.created_at),
                actor=row.actor,
                source=row.source,
                summary=loads_json(row.summary),
            )
            for row in connection.execute(statement)
        ]
