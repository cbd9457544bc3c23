"""Reading, diffing and importing the registry (spec §2, §2.1).

The database is read with a handful of SELECTs and assembled in Python into a canonical
:class:`RegistryDocument`. An import diffs the stored document with the new one and, in one
transaction, writes only what changed with Core bulk statements: unchanged entities keep their
ids, changed entities are updated in place and their children replaced, a changed JSON Schema
adds a version, and a ``registry_revisions`` row records who changed what and when.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from pipeline_platform.registry.document import (
    DataSource,
    Flow,
    Pipeline,
    Preset,
    Record,
    RegistryDocument,
    Topic,
    record_to_data,
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

KINDS = ("topics", "flows", "data_sources", "presets", "pipelines")
"""The top-level sections of a registry document, in document order."""

KIND_LABELS = {
    "topics": "topic",
    "flows": "flow",
    "data_sources": "data_source",
    "presets": "preset",
    "pipelines": "pipeline",
}

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
_DATA_SOURCE_COLUMNS = ("kind", "url_env", "description")
_PIPELINE_COLUMNS = ("description", "mode", "schedule", "timezone", "status", "graph")
_PRESET_COLUMNS = ("module", "description", "config")
_CHUNK = 500
_LAST = 2**31 - 1  # mappings inserted in SQL without a position come last


def split_key(text: str | None) -> list[str]:
    """Parse a stored upsert key, ``"device_id, timestamp"``, into its column names."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def join_key(columns: Iterable[str]) -> str:
    """Store an upsert key as the comma-separated list SQL users write."""
    return ", ".join(columns)


# --------------------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class KindDiff:
    """Differences of one kind of entity (topics, flows, data sources or pipelines).

    Attributes:
        added: Names present only in the new document, sorted.
        changed: Name → top-level fields (YAML keys) that differ, sorted by name.
        removed: Names present only in the old document, sorted.
    """

    added: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing was added, changed or removed."""
        return not (self.added or self.changed or self.removed)


@dataclass(frozen=True)
class RegistryDiff:
    """What an import changes, per kind of entity."""

    topics: KindDiff = KindDiff()
    flows: KindDiff = KindDiff()
    data_sources: KindDiff = KindDiff()
    presets: KindDiff = KindDiff()
    pipelines: KindDiff = KindDiff()

    def kinds(self) -> Iterator[tuple[str, KindDiff]]:
        """Yield ``(kind, diff)`` for every kind, in document order."""
        for kind in KINDS:
            yield kind, getattr(self, kind)

    @property
    def is_empty(self) -> bool:
        """True when the two documents are the same registry."""
        return all(diff.is_empty for _, diff in self.kinds())

    def lines(self) -> list[str]:
        """Return readable lines: ``+ topic x``, ``~ topic y: table, schema``, ``- flow z``."""
        out: list[str] = []
        for kind, diff in self.kinds():
            label = KIND_LABELS[kind]
            out.extend(f"+ {label} {name}" for name in diff.added)
            out.extend(
                f"~ {label} {name}: {', '.join(fields)}" for name, fields in diff.changed.items()
            )
            out.extend(f"- {label} {name}" for name in diff.removed)
        return out

    def summary(self) -> dict[str, Any]:
        """Return the diff as JSON-able data (stored with each registry revision)."""
        return {
            kind: {
                "added": list(diff.added),
                "changed": {name: list(fields) for name, fields in diff.changed.items()},
                "removed": list(diff.removed),
            }
            for kind, diff in self.kinds()
        }


def _changed_fields(old: Record, new: Record) -> tuple[str, ...]:
    fields: list[str] = []
    for name, info in type(old).model_fields.items():
        if getattr(old, name) != getattr(new, name):
            fields.append(info.alias or name)
    return tuple(fields)


def _diff_kind(old: Sequence[Any], new: Sequence[Any]) -> KindDiff:
    before = {item.name: item for item in old}
    after = {item.name: item for item in new}
    changed: dict[str, tuple[str, ...]] = {}
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            changed[name] = _changed_fields(before[name], after[name])
    return KindDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        changed=changed,
        removed=tuple(sorted(before.keys() - after.keys())),
    )


def diff_documents(old: RegistryDocument, new: RegistryDocument) -> RegistryDiff:
    """Compare two registry documents entity by entity (matched by name).

    Args:
        old: The registry as it is.
        new: The registry as it should be.

    Returns:
        Added, changed (with the top-level fields that changed) and removed names per kind.
    """
    return RegistryDiff(
        **{kind: _diff_kind(getattr(old, kind), getattr(new, kind)) for kind in KINDS}
    )


# --------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class _State:
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


_MODELS: dict[str, type[Record]] = {
    "topics": Topic,
    "flows": Flow,
    "data_sources": DataSource,
    "presets": Preset,
    "pipelines": Pipeline,
}


class InvalidRows:
    """Stored entities that no longer validate (a hand-written SQL edit, say), kept out of reads.

    One bad row must not take the whole registry down: the entity it belongs to is left out of
    the document and reported; an import that holds the entity rewrites it whole.
    """

    def __init__(self) -> None:
        self.reasons: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}

    def check(
        self, out: list[Any], kind: str, name: str, model: type[Record], data: dict[str, Any]
    ) -> None:
        """Validate ``data`` as ``model`` into ``out``, or record why the entity is left out."""
        try:
            out.append(model.model_validate(data))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            reason = str(first["msg"]).removeprefix("Value error, ")
            self.reasons[kind][name] = f"{where}: {reason}" if where else reason

    def problems(self) -> list[str]:
        """One line per left-out entity: ``topic 'x' skipped: table.mappings.2.type: ...``."""
        return [
            f"{KIND_LABELS[kind]} {name!r} skipped: invalid registry row ({reason})"
            for kind in KINDS
            for name, reason in sorted(self.reasons[kind].items())
        ]

    def repair(self, diff: RegistryDiff, new: RegistryDocument) -> RegistryDiff:
        """Make ``diff`` rewrite (or remove) every left-out entity instead of adding it again."""
        kinds: dict[str, KindDiff] = {}
        for kind, kind_diff in diff.kinds():
            bad = self.reasons[kind]
            if not bad:
                kinds[kind] = kind_diff
                continue
            wanted = {item.name for item in getattr(new, kind)}
            fields = _MODELS[kind].model_fields.items()
            every_field = tuple(info.alias or name for name, info in fields)
            changed = dict(kind_diff.changed)
            changed.update({name: every_field for name in bad if name in wanted})
            kinds[kind] = KindDiff(
                added=tuple(n for n in kind_diff.added if n not in bad),
                changed=dict(sorted(changed.items())),
                removed=tuple(sorted({*kind_diff.removed, *(n for n in bad if n not in wanted)})),
            )
        return RegistryDiff(**kinds)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _read_state(connection: Connection) -> _State:
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
        row.topic_id: (row.version, _loads(row.schema_json))
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
                "default": _loads(row.default_value),
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
                "graph": _loads(row.graph),
            },
        )

    preset_list: list[Preset] = []
    preset_ids: dict[str, int] = {}
    for row in execute(select(module_presets)):
        preset_ids[row.name] = row.id
        data = {"name": row.name, "module": row.module, "description": row.description}
        invalid.check(
            preset_list, "presets", row.name, Preset, {**data, "config": _loads(row.config)}
        )

    document = RegistryDocument(
        topics=tuple(topics),
        flows=tuple(flows),
        data_sources=tuple(sources),
        presets=tuple(preset_list),
        pipelines=tuple(pipeline_list),
    ).canonical()
    return _State(
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
            state = _read_state(bind)
        else:
            with bind.connect() as connection:
                state = _read_state(connection)
    if problems is not None:
        problems.extend(state.invalid.problems())
    return state.document


def read_document_and_invalid_rows(
    engine: Engine,
) -> tuple[RegistryDocument, dict[str, dict[str, str]]]:
    """Read the registry and the entities left out of it: kind → name → ``where: reason``."""
    with gc_paused(), engine.connect() as connection:
        state = _read_state(connection)
    return state.document, {kind: dict(r) for kind, r in state.invalid.reasons.items() if r}


# ------------------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportResult:
    """Outcome of :func:`import_document`.

    Attributes:
        diff: What changed (or would change, for a dry run).
        revision: The new registry revision, or None when nothing was written.
    """

    diff: RegistryDiff
    revision: int | None


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


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _delete_in(
    connection: Connection,
    table: Table,
    column: str,
    ids: Sequence[Any],
    via: Callable[[Sequence[Any]], Any] | None = None,
) -> None:
    """Delete the rows of ``table`` whose ``column`` is in ``ids`` (or in ``via(ids)``)."""
    for chunk in _chunks(ids):
        target: Any = via(chunk) if via is not None else list(chunk)
        condition: ColumnElement[bool] = table.c[column].in_(target)
        connection.execute(delete(table).where(condition))


def _stage_ids_of(flow_ids: Sequence[int]) -> Any:
    return select(pipeline_stages.c.id).where(pipeline_stages.c.flow_id.in_(flow_ids))


def _update_rows(
    connection: Connection, table: Table, columns: Iterable[str], rows: list[dict[str, Any]]
) -> None:
    """Update rows by id: ``rows`` hold ``_id`` and every column in ``columns``."""
    if not rows:
        return
    statement = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(name) for name in columns})
    )
    connection.execute(statement, rows)


def _uses_copy(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _copy_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write rows with PostgreSQL ``COPY ... FROM STDIN`` in the connection's transaction.

    Values travel in the COPY data stream, never in SQL text; table and column names are the
    model's own, quoted as identifiers.
    """
    from psycopg import sql

    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    raw: Any = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])


def _insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows in bulk: COPY on PostgreSQL (psycopg), executemany elsewhere."""
    if not rows:
        return
    if _uses_copy(connection):
        _copy_rows(connection, table, rows)
    else:
        connection.execute(insert(table), rows)


def _insert_returning_ids(
    connection: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert rows in bulk and return their new ids in the order of ``rows``."""
    if not rows:
        return []
    if _uses_copy(connection):
        # Take the ids from the table's sequence first, then COPY the rows with them.
        sequence = func.pg_get_serial_sequence(table.name, "id")
        series = func.generate_series(1, len(rows)).table_valued("n")
        ids = [
            int(value)
            for value in connection.execute(select(func.nextval(sequence)).select_from(series))
            .scalars()
            .all()
        ]
        _copy_rows(connection, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return ids
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(row[0]) for row in connection.execute(statement, rows)]


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
            _insert_rows(connection, topic_api_endpoints, rows)
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
        _insert_rows(connection, topic_table_configs, table_rows)
        mapping_rows = [
            {
                "topic_name": name,
                "table_name": table.name,
                "position": position,
                "source_field_path": mapping.source,
                "target_column": mapping.column,
                "data_type": mapping.type,
                "is_required": mapping.required,
                "default_value": None if mapping.default is None else _dumps(mapping.default),
            }
            for name, table in with_table
            for position, mapping in enumerate(table.mappings)
        ]
        if mapping_rows:
            _insert_rows(connection, topic_field_mappings, mapping_rows)


def _add_schema_versions(
    connection: Connection, versions: list[tuple[int, int, Any]], now: datetime
) -> None:
    rows = [
        {
            "topic_id": topic_id,
            "version": version,
            "schema_json": None if schema is None else _dumps(schema),
            "created_at": now,
        }
        for topic_id, version, schema in versions
    ]
    if rows:
        _insert_rows(connection, kafka_topic_schemas, rows)


def _apply_topics(
    connection: Connection, state: _State, new: RegistryDocument, diff: KindDiff, now: datetime
) -> dict[str, int]:
    """Write the topic changes; return the ids of every topic of the new document."""
    topic_ids = dict(state.topic_ids)
    by_name = {topic.name: topic for topic in new.topics}

    removed = [topic_ids.pop(name) for name in diff.removed]
    if removed:
        _delete_in(connection, pipeline_stage_topics, "topic_id", removed)
        for table in (topic_field_mappings, topic_table_configs):
            _delete_in(connection, table, "topic_name", diff.removed)
        for table in (topic_api_endpoints, kafka_topic_schemas):
            _delete_in(connection, table, "topic_id", removed)
        _delete_in(connection, kafka_topics, "id", removed)

    changed = [
        (topic_ids[name], by_name[name], set(fields)) for name, fields in diff.changed.items()
    ]
    _update_rows(
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
    _delete_in(connection, topic_api_endpoints, "topic_id", [i for i, _ in new_endpoints])
    new_tables = [(i, t) for i, t, fields in changed if "table" in fields]
    table_topics = [topic.name for _, topic in new_tables]
    _delete_in(connection, topic_field_mappings, "topic_name", table_topics)
    _delete_in(connection, topic_table_configs, "topic_name", table_topics)
    _write_topic_children(connection, new_endpoints, endpoints=True, tables=False)
    _write_topic_children(connection, new_tables, endpoints=False, tables=True)
    versions = [
        (topic_id, state.schema_versions.get(topic_id, 0) + 1, topic.json_schema)
        for topic_id, topic, fields in changed
        if "schema" in fields
    ]

    added = [by_name[name] for name in diff.added]
    added_ids = _insert_returning_ids(
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
    stage_ids = _insert_returning_ids(
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
        _insert_rows(connection, pipeline_stage_topics, rows)


def _apply_flows(
    connection: Connection,
    state: _State,
    new: RegistryDocument,
    diff: KindDiff,
    topic_ids: Mapping[str, int],
) -> None:
    by_name = {flow.name: flow for flow in new.flows}
    removed = [state.flow_ids[name] for name in diff.removed]
    _delete_in(connection, pipeline_stage_topics, "stage_id", removed, _stage_ids_of)
    _delete_in(connection, pipeline_stages, "flow_id", removed)
    _delete_in(connection, pipeline_flows, "id", removed)

    changed = [(state.flow_ids[name], by_name[name], set(f)) for name, f in diff.changed.items()]
    _update_rows(
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
    _delete_in(connection, pipeline_stage_topics, "stage_id", restaged_ids, _stage_ids_of)
    _delete_in(connection, pipeline_stages, "flow_id", restaged_ids)

    added = [by_name[name] for name in diff.added]
    added_ids = _insert_returning_ids(
        connection,
        pipeline_flows,
        [{"name": f.name, **{name: getattr(f, name) for name in _FLOW_COLUMNS}} for f in added],
    )
    _insert_stages(connection, [*restaged, *zip(added_ids, added, strict=True)], topic_ids)


def _data_source_row(source: DataSource) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _DATA_SOURCE_COLUMNS}


def _pipeline_row(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "description": pipeline.description,
        "mode": pipeline.mode,
        "schedule": pipeline.schedule,
        "timezone": pipeline.timezone,
        "status": pipeline.status,
        "graph": _dumps(record_to_data(pipeline.graph)),
    }


def _preset_row(preset: Preset) -> dict[str, Any]:
    return {
        "module": preset.module,
        "description": preset.description,
        "config": _dumps(preset.config),
    }



def _apply_simple(
    connection: Connection,
    table: Table,
    ids: Mapping[str, int],
    items: Sequence[Any],
    diff: KindDiff,
    columns: tuple[str, ...],
    to_row: Callable[[Any], dict[str, Any]],
) -> None:
    by_name = {item.name: item for item in items}
    _delete_in(connection, table, "id", [ids[name] for name in diff.removed])
    _update_rows(
        connection,
        table,
        columns,
        [{"_id": ids[name], **to_row(by_name[name])} for name in diff.changed],
    )
    rows = [{"name": name, **to_row(by_name[name])} for name in diff.added]
    if rows:
        _insert_rows(connection, table, rows)


def _apply(
    connection: Connection,
    state: _State,
    new: RegistryDocument,
    diff: RegistryDiff,
    revision: int,
    actor: str,
    source: str | None,
) -> None:
    now = datetime.now(UTC)
    # The revision row goes first: a concurrent import of the same base revision collides on its
    # primary key (and waits for, then fails after, the first one) instead of interleaving.
    connection.execute(
        insert(registry_revisions).values(
            revision=revision,
            created_at=now,
            actor=actor,
            source=source,
            summary=_dumps(diff.summary()),
        )
    )
    _apply_simple(
        connection,
        data_sources,
        state.data_source_ids,
        new.data_sources,
        diff.data_sources,
        _DATA_SOURCE_COLUMNS,
        _data_source_row,
    )
    _apply_simple(
        connection,
        module_presets,
        state.preset_ids,
        new.presets,
        diff.presets,
        _PRESET_COLUMNS,
        _preset_row,
    )
    topic_ids = _apply_topics(connection, state, new, diff.topics, now)
    _apply_flows(connection, state, new, diff.flows, topic_ids)
    _apply_simple(
        connection,
        pipelines,
        state.pipeline_ids,
        new.pipelines,
        diff.pipelines,
        _PIPELINE_COLUMNS,
        _pipeline_row,
    )
    record_content(connection, revision, new)


def record_content(connection: Connection, revision: int, document: RegistryDocument) -> None:
    """Store the content fingerprint and the document with a revision (after its writes)."""
    from pipeline_platform.registry.fingerprint import content_fingerprint

    connection.execute(
        update(registry_revisions)
        .where(registry_revisions.c.revision == revision)
        .values(
            fingerprint=content_fingerprint(connection),
            content=document.model_dump_json(by_alias=True),
        )
    )


def _check_references(document: RegistryDocument) -> None:
    """Refuse a document whose stages name topics it does not hold (validation's rule)."""
    topic_names = {topic.name for topic in document.topics}
    for flow in document.flows:
        for stage in flow.stages:
            for _, name in stage.topics_by_role():
                if name not in topic_names:
                    raise ValueError(
                        f"flow {flow.name!r} stage {stage.name!r} names unknown topic {name!r}"
                    )


def import_document(
    engine: Engine,
    document: RegistryDocument,
    *,
    actor: str,
    source: str | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Make the registry equal to ``document``, writing only what changed, in one transaction.

    Unchanged entities keep their ids; a changed entity is updated in place and its children
    (endpoints, table and mappings, stages) replaced; a changed JSON Schema adds a version and
    keeps the old ones. A ``registry_revisions`` row records actor, time, source and the diff
    summary. Importing the registry as it is writes nothing and adds no revision. Any failure
    rolls everything back.

    Args:
        engine: Engine of a migrated registry database.
        document: The validated registry document (see ``validation.load_document``).
        actor: Who makes the change (user name, service).
        source: Where the document comes from (e.g. a file path), recorded in the history.
        dry_run: Compute the diff only; write nothing.

    Returns:
        The diff and the new revision (None when nothing was written).

    Raises:
        ValueError: when a stage names a topic the document does not hold.
        sqlalchemy.exc.IntegrityError: when another import committed a revision meanwhile.
    """
    new = document.canonical()
    _check_references(new)
    with gc_paused(), engine.connect() as connection:
        state = _read_state(connection)
        diff = state.invalid.repair(diff_documents(state.document, new), new)
        if diff.is_empty or dry_run:
            connection.rollback()
            return ImportResult(diff=diff, revision=None)
        revision = state.revision + 1
        try:
            _apply(connection, state, new, diff, revision, actor, source)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    return ImportResult(diff=diff, revision=revision)


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
                summary=json.loads(row.summary),
            )
            for row in connection.execute(statement)
        ]
