"""Stored dead letters: listing, and replay after the registry is fixed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline_platform.ingestion.decode import (
    DecodeOptions,
    compile_validator,
    row_sources,
    transform_batch,
)
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.ingestion.tables import asset_key_of, table_of, table_spec_of
from pipeline_platform.ingestion.writer import write_replay
from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import StoredDeadLetter, connect_warehouse

#: A stored dead letter (``reason_kind``: parse, schema, mapping, database or retention).
DeadLetterRecord = StoredDeadLetter


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying dead letters."""

    replayed: int
    rows_written: int
    still_failing: int


def list_dead_letters(
    topic: Topic,
    *,
    warehouse_url: str,
    limit: int | None = 100,
    kind: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetterRecord]:
    """Return the stored dead letters of a topic's table, in partition/offset order.

    Args:
        topic: The topic (with its table configuration).
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        limit: At most this many (None: all).
        kind: Only dead letters of this reason kind (``parse``, ``schema``...).
        since: Only dead letters stored at or after this aware time.

    Returns:
        The dead letters.
    """
    table = table_of(topic)
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        return warehouse.list_dead_letters(
            asset_key_of(table), topic.name, limit, kind=kind, since=since
        )
    finally:
        warehouse.close()


def replay_dead_letters(
    topic: Topic,
    *,
    warehouse_url: str,
    run_id: str,
    limit: int | None = None,
    decode_options: DecodeOptions | None = None,
) -> ReplayResult:
    """Re-map a topic's dead letters with the current registry; write those that now pass.

    Messages that map are written (upserted by key, the higher offset winning) and removed from
    the dead-letter table in the same transaction; those still failing (in the mapping or in
    the database) stay, with their reason updated. Offsets are untouched. A replayed old
    message can overwrite a newer row with the same key (it is written now); replay before
    newer data arrives when that matters.

    Args:
        topic: The topic, with its (fixed) table configuration and schema.
        warehouse_url: SQLAlchemy-style URL of the warehouse.
        run_id: Id recorded on still-failing dead letters.
        limit: Replay at most this many (None: all).
        decode_options: Size limit and key rule.

    Returns:
        How many were replayed, written and are still failing.
    """
    table = table_of(topic)
    asset_key = asset_key_of(table)
    options = decode_options or DecodeOptions()
    warehouse = connect_warehouse(warehouse_url)
    try:
        warehouse.ensure_state_tables()
        target = warehouse.ensure_table(table_spec_of(table))
        records = warehouse.list_dead_letters(asset_key, topic.name, limit)
        if not records:
            return ReplayResult(0, 0, 0)
        mapping = compile_mapping(table)
        validator = compile_validator(topic.json_schema)
        by_position = {(r.partition, r.offset): r.id for r in records}
        messages = [(r.partition, r.offset, r.key, r.raw) for r in records]
        prepared = transform_batch(messages, mapping, validator, options)
        failing = {(d.partition, d.offset): d.reason for d in prepared.dead_letters}
        still = [(by_position[pos], reason) for pos, reason in failing.items()]
        row_of = {
            (source[0], source[1]): index
            for index, source in enumerate(row_sources(messages, mapping, validator, options))
        }
        resolved = [
            (ident, row_of.get(pos)) for pos, ident in by_position.items() if pos not in failing
        ]
        written = write_replay(warehouse, target, prepared.rows, resolved, still, run_id)
        return ReplayResult(len(records), written, len(still) + len(prepared.rows) - written)
    finally:
        warehouse.close()
