"""Pause and resume: an ingested table (its topic's ``active``) or a table pipeline (``status``).

A change is an ordinary registry import of the current document with one field changed, so it
is diffed, written in one transaction and recorded as a revision (actor, ``pause NAME`` /
``resume NAME`` as source) like any other edit; pausing what is already paused writes nothing.
The write names the revision the change was read at, so a change that lands in between (an
import, another pause) is never undone: the pause is refused and computed again from a fresh
read, up to :data:`ATTEMPTS` times.
The factory then leaves a paused table out of the Kafka sensors' run requests, and a paused
pipeline's schedule or sensor defaults to stopped (the UI switches still override both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import Engine

from pipeline_platform.registry.document import Pipeline, RegistryDocument, Topic
from pipeline_platform.registry.store import (
    RevisionConflictError,
    import_document,
    read_document_and_revision,
)

ATTEMPTS = 3  # reads and writes of one pause before a registry that keeps moving is reported


class ControlError(ValueError):
    """The name matches nothing, or more than one thing, that can be paused."""


@dataclass(frozen=True)
class ControlResult:
    """The outcome of a pause or resume.

    Attributes:
        kind: ``table`` or ``pipeline``.
        name: The table's asset key (``<data_source>/<table>``) or the pipeline name.
        topic: The table's topic (None for a pipeline).
        paused: The state now.
        revision: The registry revision written, None when it already was in that state.
    """

    kind: Literal["table", "pipeline"]
    name: str
    topic: str | None
    paused: bool
    revision: int | None


def _table_key(topic: Topic) -> str:
    assert topic.table is not None
    return f"{topic.table.data_source}/{topic.table.name}"


def find_target(document: RegistryDocument, name: str) -> Topic | Pipeline:
    """Return the ingested topic or the pipeline that ``name`` designates.

    A table is named by its asset key (``warehouse/orders``), its table name (when only one
    data source has it) or its topic's name; a pipeline by its name.

    Raises:
        ControlError: Nothing, or more than one thing, has that name.
    """
    topics = [
        topic
        for topic in document.topics
        if topic.table is not None and name in (_table_key(topic), topic.table.name, topic.name)
    ]
    pipelines = [pipeline for pipeline in document.pipelines if pipeline.name == name]
    found: list[Topic | Pipeline] = [*topics, *pipelines]
    if not found:
        raise ControlError(
            f"{name!r} is neither an ingested table, a topic with a table nor a pipeline"
        )
    if len(found) > 1:
        names = sorted(
            f"table {_table_key(f)}" if isinstance(f, Topic) else f"pipeline {f.name}"
            for f in found
        )
        raise ControlError(f"{name!r} is ambiguous: {', '.join(names)}; name one exactly")
    return found[0]


def _changed(
    document: RegistryDocument, target: Topic | Pipeline, paused: bool
) -> RegistryDocument:
    if isinstance(target, Topic):
        topics = tuple(
            t.model_copy(update={"active": not paused}) if t.name == target.name else t
            for t in document.topics
        )
        return document.model_copy(update={"topics": topics})
    status = "paused" if paused else "active"
    pipelines = tuple(
        p.model_copy(update={"status": status}) if p.name == target.name else p
        for p in document.pipelines
    )
    return document.model_copy(update={"pipelines": pipelines})


def set_paused(engine: Engine, name: str, paused: bool, *, actor: str) -> ControlResult:
    """Pause or resume a table or a pipeline, recorded as a registry revision.

    Args:
        engine: Engine of a migrated registry.
        name: Table asset key, table name, topic name or pipeline name.
        paused: True to pause, False to resume.
        actor: Who makes the change (recorded in the history).

    Returns:
        What was changed and the revision written (None when nothing changed).

    Raises:
        ControlError: The name matches nothing, or more than one thing.
        RevisionConflictError: The registry changed between read and write on every attempt.
    """
    for _ in range(ATTEMPTS - 1):
        try:
            return _set_paused_once(engine, name, paused, actor)
        except RevisionConflictError:
            continue  # something landed between read and write: read again
    return _set_paused_once(engine, name, paused, actor)


def _set_paused_once(engine: Engine, name: str, paused: bool, actor: str) -> ControlResult:
    document, revision = read_document_and_revision(engine)
    target = find_target(document, name)
    verb = "pause" if paused else "resume"
    result = import_document(
        engine,
        _changed(document, target, paused),
        actor=actor,
        source=f"{verb} {name}",
        base_revision=revision,
    )
    if isinstance(target, Topic):
        return ControlResult("table", _table_key(target), target.name, paused, result.revision)
    return ControlResult("pipeline", target.name, None, paused, result.revision)
