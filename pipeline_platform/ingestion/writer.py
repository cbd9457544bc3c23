"""The batch writer: rows, dead letters and next offsets in ONE database transaction.

Order inside the transaction, chosen for fencing: the offset compare-and-set comes first (in
partition order), so a second run on the same range blocks on the offset row lock, then finds
the offset moved, updates 0 rows and aborts with :class:`FencedError` before writing anything.
Rows are written with ``isolate_rejects``: rows the database refuses for their data (a CHECK,
a length, a range, an encoding) are isolated by bisection under savepoints and dead-lettered
with the database's message (kind ``database``), the rest commits with the offsets. How each
backend writes (COPY, staging, optimistic COPY) is in :mod:`pipeline_platform.warehouse`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pipeline_platform.ingestion.decode import DeadLetter
from pipeline_platform.warehouse import OffsetUpdates, RejectedRow, TargetTable, Warehouse

#: Finds the messages behind rejected rows (indexes into the written rows) as dead letters.
Locate = Callable[[Sequence[RejectedRow]], list[DeadLetter]]


def write_batch(
    warehouse: Warehouse,
    target: TargetTable,
    rows: Sequence[tuple[Any, ...]],
    dead_letters: Sequence[DeadLetter],
    offsets: OffsetUpdates,
    *,
    asset_key: str,
    topic: str,
    run_id: str,
    locate: Locate | None = None,
) -> list[DeadLetter]:
    """Write one batch atomically.

    Args:
        warehouse: The connected warehouse.
        target: The ensured target table.
        rows: Mapped rows, already deduplicated by the upsert key.
        dead_letters: Refused messages.
        offsets: Compare-and-set of each partition's next offset.
        asset_key: ``<data_source>/<table>``.
        topic: The Kafka topic.
        run_id: The run committing the batch.
        locate: Maps rows the database refused back to their messages; without it such rows
            are dead-lettered at partition -1 with their index as offset (tests only).

    Returns:
        The dead letters added because the database refused their rows.

    Raises:
        FencedError: A partition's stored offset was not the expected one (another run
            committed this range); nothing of the batch was written.
    """
    with warehouse.transaction() as tx:
        tx.compare_and_set_offsets(asset_key, topic, offsets, run_id)
        rejected = tx.write_rows(target, rows, isolate_rejects=True)
        refused = (locate or _unlocated)(rejected) if rejected else []
        tx.insert_dead_letters(asset_key, topic, [*dead_letters, *refused], run_id)
    return refused


def _unlocated(rejected: Sequence[RejectedRow]) -> list[DeadLetter]:
    return [DeadLetter(-1, r.index, None, None, r.reason) for r in rejected]


def write_replay(
    warehouse: Warehouse,
    target: TargetTable,
    rows: Sequence[tuple[Any, ...]],
    resolved: Sequence[tuple[int, int | None]],
    still_failing: Sequence[tuple[int, str]],
    run_id: str,
) -> int:
    """Write replayed dead letters: rows in, resolved dead letters out, in one transaction.

    Args:
        warehouse: The connected warehouse.
        target: The ensured target table.
        rows: Rows mapped from the replayed messages (deduplicated by key).
        resolved: ``(dead-letter id, row index or None when superseded by a later message
            with the same key)`` of every message that now maps; deleted once written.
        still_failing: ``(id, reason)`` of messages that still fail; their reason is updated.
        run_id: The replaying run.

    Returns:
        Rows written; rows the database refuses again stay dead letters with the new reason.
    """
    with warehouse.transaction() as tx:
        refused = {r.index: r.reason for r in tx.write_rows(target, rows, isolate_rejects=True)}
        failing = [*still_failing]
        done = []
        for ident, index in resolved:
            if index is not None and index in refused:
                failing.append((ident, refused[index]))
            else:
                done.append(ident)
        tx.resolve_dead_letters(done, failing, run_id)
    return len(rows) - len(refused)
