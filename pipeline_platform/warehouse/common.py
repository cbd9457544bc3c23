"""SQL shared by both backends: state-table writes and the upsert conflict clause.

The statements differ only in the driver's placeholder (``%s`` for psycopg, ``?`` for
sqlite3), so each is written once here and used by :class:`CommonTransaction`, the base of both
backends' transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipeline_platform.warehouse.base import (
    DEAD_LETTERS_TABLE,
    OFFSETS_TABLE,
    STATE_TABLE,
    FencedError,
    OffsetUpdates,
    TargetTable,
)
from pipeline_platform.warehouse.quoting import qualified_name, quote
from pipeline_platform.warehouse.rejects import DeadLetterRow, StoredDeadLetter, reason_kind

DEAD_LETTER_COLUMNS = (
    'id, asset_key, topic, partition, "offset", key, raw, reason, run_id, created_at, reason_kind'
)


def conflict_clause(target: TargetTable) -> str:
    """Return `` ON CONFLICT (key) DO UPDATE SET ...`` (last wins), or "" without a key."""
    if not target.conflict_columns:
        return ""
    key = ", ".join(quote(c) for c in target.conflict_columns)
    rest = [c for c in target.columns if c not in target.conflict_columns]
    if not rest:
        return f" ON CONFLICT ({key}) DO NOTHING"
    sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in rest)
    return f" ON CONFLICT ({key}) DO UPDATE SET {sets}"


def fenced_message(asset_key: str, topic: str, partition: int, expected: int | None) -> str:
    """Return the message of a fenced offset compare-and-set."""
    start = "no stored offset" if expected is None else f"stored offset {expected}"
    return (
        f"fenced: another run already committed {asset_key} from {topic}[{partition}] "
        f"({start} changed); this batch was rolled back"
    )


def stored_dead_letter(row: Sequence[Any]) -> StoredDeadLetter:
    """Build a record from a row selected with :data:`DEAD_LETTER_COLUMNS`."""
    return StoredDeadLetter(
        id=int(row[0]),
        asset_key=row[1],
        topic=row[2],
        partition=int(row[3]),
        offset=int(row[4]),
        key=bytes(row[5]) if row[5] is not None else None,
        raw=bytes(row[6]) if row[6] is not None else None,
        reason=row[7],
        run_id=row[8],
        created_at=row[9],
        reason_kind=row[10] or reason_kind(row[7]),
    )


class CommonTransaction:
    """State-table statements of an open transaction, for any DB-API style connection."""

    #: The driver's placeholder.
    mark = "?"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def compare_and_set_offsets(
        self, asset_key: str, topic: str, offsets: OffsetUpdates, run_id: str
    ) -> None:
        """Move each partition's next offset, only from the expected value (the fence).

        Partitions are updated in order, so concurrent runs lock offset rows in one order.

        Raises:
            FencedError: A partition's stored offset was not the expected one.
        """
        m = self.mark
        for partition in sorted(offsets):
            expected, new = offsets[partition]
            if expected is None:
                cursor = self._execute(
                    f"INSERT INTO {OFFSETS_TABLE} "
                    "(asset_key, topic, partition, next_offset, updated_at, run_id) "
                    f"VALUES ({m}, {m}, {m}, {m}, CURRENT_TIMESTAMP, {m}) ON CONFLICT DO NOTHING",
                    (asset_key, topic, partition, new, run_id),
                )
            else:
                cursor = self._execute(
                    f"UPDATE {OFFSETS_TABLE} SET next_offset = {m}, "
                    f"updated_at = CURRENT_TIMESTAMP, run_id = {m} WHERE asset_key = {m} "
                    f"AND topic = {m} AND partition = {m} AND next_offset = {m}",
                    (new, run_id, asset_key, topic, partition, expected),
                )
            if cursor.rowcount != 1:
                raise FencedError(fenced_message(asset_key, topic, partition, expected))

    def compare_and_set_state(
        self, scope: str, name: str, expected: str | None, value: str, run_id: str
    ) -> None:
        """Set a state value only if it still is ``expected`` (None: not set yet).

        Raises:
            FencedError: The stored value was not ``expected``.
        """
        m = self.mark
        if expected is None:
            cursor = self._execute(
                f"INSERT INTO {STATE_TABLE} (scope, name, value, updated_at, run_id) "
                f"VALUES ({m}, {m}, {m}, CURRENT_TIMESTAMP, {m}) ON CONFLICT DO NOTHING",
                (scope, name, value, run_id),
            )
        else:
            cursor = self._execute(
                f"UPDATE {STATE_TABLE} SET value = {m}, updated_at = CURRENT_TIMESTAMP, "
                f"run_id = {m} WHERE scope = {m} AND name = {m} AND value = {m}",
                (value, run_id, scope, name, expected),
            )
        if cursor.rowcount != 1:
            raise FencedError(
                f"fenced: state {scope}/{name} changed since it was read; rolled back"
            )

    def insert_dead_letters(
        self, asset_key: str, topic: str, dead_letters: Sequence[DeadLetterRow], run_id: str
    ) -> None:
        """Insert (or refresh the reason of) dead letters, in the open transaction."""
        if not dead_letters:
            return
        marks = ", ".join([self.mark] * 9)
        self._executemany(
            f'INSERT INTO {DEAD_LETTERS_TABLE} (asset_key, topic, partition, "offset", '
            f"key, raw, reason, reason_kind, run_id) VALUES ({marks}) "
            'ON CONFLICT (asset_key, topic, partition, "offset") DO UPDATE SET '
            "reason = excluded.reason, reason_kind = excluded.reason_kind, "
            "run_id = excluded.run_id, created_at = CURRENT_TIMESTAMP",
            [
                (
                    asset_key,
                    topic,
                    d.partition,
                    d.offset,
                    d.key,
                    d.value,
                    d.reason,
                    reason_kind(d.reason),
                    run_id,
                )
                for d in dead_letters
            ],
        )

    def resolve_dead_letters(
        self, resolved_ids: Sequence[int], still_failing: Sequence[tuple[int, str]], run_id: str
    ) -> None:
        """Delete replayed dead letters and update the reason of those still failing."""
        m = self.mark
        if resolved_ids:
            self._executemany(
                f"DELETE FROM {DEAD_LETTERS_TABLE} WHERE id = {m}", [(i,) for i in resolved_ids]
            )
        if still_failing:
            self._executemany(
                f"UPDATE {DEAD_LETTERS_TABLE} SET reason = {m}, reason_kind = {m}, run_id = {m} "
                f"WHERE id = {m}",
                [(reason, reason_kind(reason), run_id, i) for i, reason in still_failing],
            )

    def delete_all(self, target: TargetTable) -> None:
        """Delete every row of ``target`` (a ``replace`` load), in this transaction."""
        self._execute(f"DELETE FROM {target.qualified}")

    def swap_table(self, shadow: TargetTable, name: str) -> None:
        """Drop table ``name`` and rename ``shadow`` to it, in this transaction."""
        self._execute(f"DROP TABLE IF EXISTS {qualified_name(name, shadow.schema)}")
        self._execute(f"ALTER TABLE {shadow.qualified} RENAME TO {quote(name)}")


class CommonReads:
    """State-table reads of a warehouse connection, for any DB-API style connection."""

    #: The driver's placeholder.
    mark = "?"
    conn: Any

    def read_offsets(self, asset_key: str, topic: str) -> dict[int, int]:
        """Return the stored next offset per partition."""
        m = self.mark
        rows = self.conn.execute(
            f"SELECT partition, next_offset FROM {OFFSETS_TABLE} "
            f"WHERE asset_key = {m} AND topic = {m}",
            (asset_key, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def read_state(self, scope: str, name: str) -> str | None:
        """Return a stored state value, or None."""
        m = self.mark
        row = self.conn.execute(
            f"SELECT value FROM {STATE_TABLE} WHERE scope = {m} AND name = {m}", (scope, name)
        ).fetchone()
        return None if row is None else str(row[0])

    def list_dead_letters(
        self,
        asset_key: str,
        topic: str,
        limit: int | None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
    ) -> list[StoredDeadLetter]:
        """Return stored dead letters in partition/offset order.

        Args:
            asset_key: ``<data_source>/<table>``.
            topic: The Kafka topic.
            limit: At most this many (None: all).
            kind: Only this stored ``reason_kind`` (one of ``REASON_KINDS``).
            since: Only those stored (or re-failed) at or after this aware time.
        """
        m = self.mark
        where = [f"asset_key = {m}", f"topic = {m}"]
        params: tuple[Any, ...] = (asset_key, topic)
        if kind is not None:
            where.append(f"reason_kind = {m}")
            params = (*params, kind)
        if since is not None:
            where.append(f"created_at >= {m}")
            params = (*params, self._timestamp_param(since))
        sql = (
            f"SELECT {DEAD_LETTER_COLUMNS} FROM {DEAD_LETTERS_TABLE} "
            f'WHERE {" AND ".join(where)} ORDER BY partition, "offset"'
        )
        if limit is not None:
            sql, params = f"{sql} LIMIT {m}", (*params, limit)
        return [stored_dead_letter(row) for row in self.conn.execute(sql, params).fetchall()]

    def _timestamp_param(self, value: datetime) -> Any:
        """Return a time as the driver compares it with ``created_at`` (aware datetime here)."""
        return value


def backfill_reason_kinds(rows: Sequence[tuple[int, str]]) -> list[tuple[str, int]]:
    """Return ``(kind, id)`` updates for dead letters stored before ``reason_kind`` existed."""
    return [(reason_kind(reason), int(ident)) for ident, reason in rows]
