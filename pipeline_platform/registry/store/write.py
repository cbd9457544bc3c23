"""Importing a registry document: diff with the stored one, write only what changed (spec §2.1).

In one transaction, with Core bulk statements: unchanged entities keep their ids, changed entities
are updated in place and their children replaced, a changed JSON Schema adds a version, and a
``registry_revisions`` row records who changed what and when.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, update
from sqlalchemy.exc import IntegrityError

from pipeline_platform.registry.document import (
    DataSource,
    Pipeline,
    Preset,
    RegistryDocument,
    record_to_data,
)
from pipeline_platform.registry.gc_pause import gc_paused
from pipeline_platform.registry.models import (
    data_sources,
    module_presets,
    pipelines,
    registry_revisions,
)
from pipeline_platform.registry.rules import check_stage_references
from pipeline_platform.registry.store.diff import KindDiff, RegistryDiff, diff_documents
from pipeline_platform.registry.store.read import StoredState, read_state
from pipeline_platform.registry.store.rows import delete_in, dumps_json, insert_rows, update_rows
from pipeline_platform.registry.store.write_topics import apply_flows, apply_topics

_DATA_SOURCE_COLUMNS = ("kind", "url_env", "description")
_PIPELINE_COLUMNS = ("description", "mode", "schedule", "timezone", "status", "graph")
_PRESET_COLUMNS = ("module", "description", "config")


class RevisionConflictError(RuntimeError):
    """The registry changed between the read a change was computed from and its write.

    Nothing was written; computing the change again from a fresh read and retrying is safe.
    """


@dataclass(frozen=True)
class ImportResult:
    """Outcome of :func:`import_document`.

    Attributes:
        diff: What changed (or would change, for a dry run).
        revision: The new registry revision, or None when nothing was written.
    """

    diff: RegistryDiff
    revision: int | None


def _data_source_row(source: DataSource) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _DATA_SOURCE_COLUMNS}


def _pipeline_row(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "description": pipeline.description,
        "mode": pipeline.mode,
        "schedule": pipeline.schedule,
        "timezone": pipeline.timezone,
        "status": pipeline.status,
        "graph": dumps_json(record_to_data(pipeline.graph)),
    }


def _preset_row(preset: Preset) -> dict[str, Any]:
    return {
        "module": preset.module,
        "description": preset.description,
        "config": dumps_json(preset.config),
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
    delete_in(connection, table, "id", [ids[name] for name in diff.removed])
    update_rows(
        connection,
        table,
        columns,
        [{"_id": ids[name], **to_row(by_name[name])} for name in diff.changed],
    )
    rows = [{"name": name, **to_row(by_name[name])} for name in diff.added]
    if rows:
        insert_rows(connection, table, rows)


def _apply(
    connection: Connection,
    state: StoredState,
    new: RegistryDocument,
    diff: RegistryDiff,
    revision: int,
    actor: str,
    source: str | None,
) -> None:
    now = datetime.now(UTC)
    # The revision row goes first: a concurrent import of the same base revision collides on its
    # primary key (and waits for, then fails after, the first one) instead of interleaving.
    try:
        connection.execute(
            insert(registry_revisions).values(
                revision=revision,
                created_at=now,
                actor=actor,
                source=source,
                summary=dumps_json(diff.summary()),
            )
        )
    except IntegrityError as error:
        raise RevisionConflictError(
            f"another change was recorded as registry revision {revision} meanwhile; "
            "nothing written, try again"
        ) from error
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
    topic_ids = apply_topics(connection, state, new, diff.topics, now)
    apply_flows(connection, state, new, diff.flows, topic_ids)
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


def import_document(
    engine: Engine,
    document: RegistryDocument,
    *,
    actor: str,
    source: str | None = None,
    dry_run: bool = False,
    base_revision: int | None = None,
) -> ImportResult:
    """Make the registry equal to ``document``, writing only what changed, in one transaction.

    Unchanged entities keep their ids; a changed entity is updated in place and its children
    (endpoints, table and mappings, stages) replaced; a changed JSON Schema adds a version and
    keeps the old ones. A ``registry_revisions`` row records actor, time, source and the diff
    summary. Importing the registry as it is writes nothing and adds no revision. Any failure
    rolls everything back.

    Writers are serialised by the new revision's primary key (``stored revision + 1``, inserted
    before anything else): of two imports computed from the same stored revision the second
    fails. A change computed from an earlier read (pause: read, change one field, write back)
    passes that read's revision as ``base_revision`` and is refused when the registry has moved
    on, so it cannot silently undo a change that landed in between.

    Args:
        engine: Engine of a migrated registry database.
        document: The validated registry document (see ``validation.load_document``).
        actor: Who makes the change (user name, service).
        source: Where the document comes from (e.g. a file path), recorded in the history.
        dry_run: Compute the diff only; write nothing.
        base_revision: The registry revision ``document`` was computed from; None for a
            document that states the whole registry by itself (a file import).

    Returns:
        The diff and the new revision (None when nothing was written).

    Raises:
        ValueError: when a stage names a topic the document does not hold.
        RevisionConflictError: when the registry is no longer at ``base_revision``, or another
            import committed a revision meanwhile; nothing is written.
    """
    new = document.canonical()
    check_stage_references(new.flows, {topic.name for topic in new.topics})
    with gc_paused(), engine.connect() as connection:
        state = read_state(connection)
        if base_revision is not None and state.revision != base_revision:
            connection.rollback()
            raise RevisionConflictError(
                f"the registry changed meanwhile: it is at revision {state.revision}, the change "
                f"was computed from revision {base_revision}; nothing written, try again"
            )
        # Race-free: a revision committed since read_state read the latest one has the number
        # this import is about to insert, so that insert fails (PostgreSQL: after waiting for a
        # writer still in progress) instead of overwriting the change.
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
