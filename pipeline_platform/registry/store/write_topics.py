"""Writing the topic and flow changes of an import (ids kept, children replaced)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from pipeline_platform.registry.document import Flow, RegistryDocument, Topic
from pipeline_platform.registry.models import (
    kafka_topic_schemas,
    kafka_topics,
    pipeline_flows,
    pipeline_stage_topics,
    pipeline_stages,
    topic_api_endpoints,
    topic_field_mappings,
    topic_table_configs,
)
from pipeline_platform.registry.store.diff import KindDiff
from pipeline_platform.registry.store.read import StoredState
from pipeline_platform.registry.store.rows import (
    delete_in,
    dumps_json,
    insert_returning_ids,
    insert_rows,
    join_key,
    update_rows,
)

_TOPIC_COLUMNS = (
    "category",
    "source",
    "datatype",
    "description",
    "partitions",
    "retention_days",
    "active",
)
_FLOW_COLUMNS = ("description", "priority", "active")


def _stage_ids_of(flow_ids: Sequence[int]) -> Any:
    return select(pipeline_stages.c.id).where(pipeline_stages.c.flow_id.in_(flow_ids))


def _topic_row(topic: Topic) -> dict[str, Any]:
    return {name: getattr(topic, name) for name in _TOPIC_COLUMNS}


def _write_topic_children(
    connection: Connection,
    topics: Sequence[tuple[int, Topic]],
    *,
    endpoints: bool,
    tables: bool,
) -> None:
    if endpoints:
        rows = [
            {"topic_id": topic_id, "position": position, "path": e.path, "method": e.method}
            for topic_id, topic in topics
            for position, e in enumerate(topic.api_endpoints)
        ]
        if rows:
            insert_rows(connection, topic_api_endpoints, rows)
    if tables:
        with_table = [(topic.name, topic.table) for _, topic in topics if topic.table]
        table_rows = [
            {
                "topic_name": name,
                "data_source": table.data_source,
                "schema_name": table.db_schema,
                "table_name": table.name,
                "upsert_key": join_key(table.upsert_key),
                "time_column": table.time_column,
                "max_lag_messages": table.max_lag_messages,
                "max_lag_seconds": table.max_lag_seconds,
                "max_dead_letter_ratio": table.max_dead_letter_ratio,
                "freshness_minutes": table.freshness_minutes,
            }
            for name, table in with_table
        ]
        insert_rows(connection, topic_table_configs, table_rows)
        mapping_rows = [
            {
                "topic_name": name,
                "table_name": table.name,
                "position": position,
                "source_field_path": mapping.source,
                "target_column": mapping.column,
                "data_type": mapping.type,
                "is_required": mapping.required,
                "default_value": None if mapping.default is None else dumps_json(mapping.default),
            }
            for name, table in with_table
            for position, mapping in enumerate(table.mappings)
        ]
        if mapping_rows:
            insert_rows(connection, topic_field_mappings, mapping_rows)


def _add_schema_versions(
    connection: Connection, versions: list[tuple[int, int, Any]], now: datetime
) -> None:
    rows = [
        {
            "topic_id": topic_id,
            "version": version,
            "schema_json": None if schema is None else dumps_json(schema),
            "created_at": now,
        }
        for topic_id, version, schema in versions
    ]
    if rows:
        insert_rows(connection, kafka_topic_schemas, rows)


def apply_topics(
    connection: Connection, state: StoredState, new: RegistryDocument, diff: KindDiff, now: datetime
) -> dict[str, int]:
    """Write the topic changes; return the ids of every topic of the new document."""
    topic_ids = dict(state.topic_ids)
    by_name = {topic.name: topic for topic in new.topics}

    removed = [topic_ids.pop(name) for name in diff.removed]
    if removed:
        delete_in(connection, pipeline_stage_topics, "topic_id", removed)
        for table in (topic_field_mappings, topic_table_configs):
            delete_in(connection, table, "topic_name", diff.removed)
        for table in (topic_api_endpoints, kafka_topic_schemas):
            delete_in(connection, table, "topic_id", removed)
        delete_in(connection, kafka_topics, "id", removed)

    changed = [
        (topic_ids[name], by_name[name], set(fields)) for name, fields in diff.changed.items()
    ]
    update_rows(
        connection,
        kafka_topics,
        _TOPIC_COLUMNS,
        [
            {"_id": topic_id, **_topic_row(topic)}
            for topic_id, topic, fields in changed
            if fields.intersection(_TOPIC_COLUMNS)
        ],
    )
    new_endpoints = [(i, t) for i, t, fields in changed if "api_endpoints" in fields]
    delete_in(connection, topic_api_endpoints, "topic_id", [i for i, _ in new_endpoints])
    new_tables = [(i, t) for i, t, fields in changed if "table" in fields]
    table_topics = [topic.name for _, topic in new_tables]
    delete_in(connection, topic_field_mappings, "topic_name", table_topics)
    delete_in(connection, topic_table_configs, "topic_name", table_topics)
    _write_topic_children(connection, new_endpoints, endpoints=True, tables=False)
    _write_topic_children(connection, new_tables, endpoints=False, tables=True)
    versions = [
        (topic_id, state.schema_versions.get(topic_id, 0) + 1, topic.json_schema)
        for topic_id, topic, fields in changed
        if "schema" in fields
    ]

    added = [by_name[name] for name in diff.added]
    added_ids = insert_returning_ids(
        connection, kafka_topics, [{"topic_name": t.name, **_topic_row(t)} for t in added]
    )
    added_pairs = list(zip(added_ids, added, strict=True))
    topic_ids.update((topic.name, topic_id) for topic_id, topic in added_pairs)
    _write_topic_children(connection, added_pairs, endpoints=True, tables=True)
    versions.extend((i, 1, t.json_schema) for i, t in added_pairs if t.json_schema is not None)
    _add_schema_versions(connection, versions, now)
    return topic_ids


def _insert_stages(
    connection: Connection, flows: Sequence[tuple[int, Flow]], topic_ids: Mapping[str, int]
) -> None:
    stages = [
        (flow_id, order, stage)
        for flow_id, flow in flows
        for order, stage in enumerate(flow.stages, start=1)
    ]
    stage_ids = insert_returning_ids(
        connection,
        pipeline_stages,
        [
            {
                "flow_id": flow_id,
                "name": stage.name,
                "service_name": stage.service,
                "description": stage.description,
                "stage_order": order,
            }
            for flow_id, order, stage in stages
        ],
    )
    rows: list[dict[str, Any]] = []
    for stage_id, (_, _, stage) in zip(stage_ids, stages, strict=True):
        for role, names in (
            ("input", stage.inputs),
            ("output", stage.outputs),
            ("error", stage.errors),
        ):
            for position, name in enumerate(names):
                if name not in topic_ids:
                    raise ValueError(f"stage {stage.name!r} names unknown topic {name!r}")
                rows.append(
                    {
                        "stage_id": stage_id,
                        "topic_id": topic_ids[name],
                        "role": role,
                        "position": position,
                    }
                )
    if rows:
        insert_rows(connection, pipeline_stage_topics, rows)


def apply_flows(
    connection: Connection,
    state: StoredState,
    new: RegistryDocument,
    diff: KindDiff,
    topic_ids: Mapping[str, int],
) -> None:
    by_name = {flow.name: flow for flow in new.flows}
    removed = [state.flow_ids[name] for name in diff.removed]
    delete_in(connection, pipeline_stage_topics, "stage_id", removed, _stage_ids_of)
    delete_in(connection, pipeline_stages, "flow_id", removed)
    delete_in(connection, pipeline_flows, "id", removed)

    changed = [(state.flow_ids[name], by_name[name], set(f)) for name, f in diff.changed.items()]
    update_rows(
        connection,
        pipeline_flows,
        _FLOW_COLUMNS,
        [
            {"_id": flow_id, **{name: getattr(flow, name) for name in _FLOW_COLUMNS}}
            for flow_id, flow, fields in changed
            if fields.intersection(_FLOW_COLUMNS)
        ],
    )
    restaged = [(flow_id, flow) for flow_id, flow, fields in changed if "stages" in fields]
    restaged_ids = [flow_id for flow_id, _ in restaged]
    delete_in(connection, pipeline_stage_topics, "stage_id", restaged_ids, _stage_ids_of)
    delete_in(connection, pipeline_stages, "flow_id", restaged_ids)

    added = [by_name[name] for name in diff.added]
    added_ids = insert_returning_ids(
        connection,
        pipeline_flows,
        [{"name": f.name, **{name: getattr(f, name) for name in _FLOW_COLUMNS}} for f in added],
    )
    _insert_stages(connection, [*restaged, *zip(added_ids, added, strict=True)], topic_ids)
