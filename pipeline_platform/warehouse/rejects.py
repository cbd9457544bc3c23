"""What a write refuses: dead letters (messages that never became rows) and rejected rows.

Records shared by the warehouse backends and ingestion, and the savepoint bisection that finds
the rows a database refuses in a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Dead-letter reason kinds, for checks and metrics (see :func:`reason_kind`).
REASON_KINDS = ("parse", "schema", "mapping", "database", "retention")


@dataclass(frozen=True)
class RejectedRow:
    """A row the database refused: its index in the written batch and the database's message."""

    index: int
    reason: str


@dataclass(frozen=True)
class DeadLetterRow:
    """A message to store as a dead letter (``value`` is the raw bytes)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as stored."""

    id: int
    asset_key: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    reason: str
    run_id: str | None
    created_at: datetime | str | None
    reason_kind: str = "parse"


def reason_kind(reason: str) -> str:
    """Classify a dead-letter reason into one of :data:`REASON_KINDS`.

    Reasons start with stable prefixes (see :mod:`pipeline_platform.ingestion.decode`):
    ``schema violation`` is ``schema``; ``database:`` is ``database``; ``retention`` is
    ``retention``; decoding failures (empty, oversized, not UTF-8, malformed JSON, not a JSON
    object, missing key) are ``parse``; everything else comes from the mapping.
    """
    if reason.startswith("schema violation"):
        return "schema"
    if reason.startswith("database:"):
        return "database"
    if reason.startswith("retention"):
        return "retention"
    if reason.startswith(_PARSE_PREFIXES):
        return "parse"
    return "mapping"


_PARSE_PREFIXES = (
    "empty message",
    "oversized message",
    "not UTF-8",
    "malformed JSON",
    "not a JSON object",
    "missing key",
)


def bisect_rejects(
    indexes: Sequence[int],
    attempt: Any,
    refused: Any,
) -> Iterator[RejectedRow]:
    """Find the rows a database refuses with O(k log n) attempts under savepoints.

    Args:
        indexes: Row indexes of a batch that failed as a whole.
        attempt: ``attempt(indexes)`` writes those rows inside a savepoint and returns None, or
            returns the database's one-line message when it refused them (savepoint rolled
            back); any other error propagates.
        refused: The message of the failure of the whole batch.

    Yields:
        The refused rows; every other row has been written.
    """
    stack: list[tuple[Sequence[int], str]] = [(indexes, refused)]
    while stack:
        part, message = stack.pop()
        if len(part) == 1:
            yield RejectedRow(part[0], message)
            continue
        middle = len(part) // 2
        for half in (part[middle:], part[:middle]):  # popped first half first
            failure = attempt(half)
            if failure is not None:
                stack.append((half, failure))
