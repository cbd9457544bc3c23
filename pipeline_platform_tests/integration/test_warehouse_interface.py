"""The warehouse interface on real PostgreSQL and SQLite: tables, writes, state, rejects."""

from __future__ import annotations

import pytest

from pipeline_platform.warehouse import (
    DeadLetterRow,
    FencedError,
    TableSpec,
    connect_warehouse,
)

SPEC = TableSpec.of(
    "events", [("id", "integer"), ("name", "string"), ("score", "float")], key=["id"]
)


def _count(warehouse: object, sql: str) -> int:
    return int(warehouse.conn.execute(sql).fetchone()[0])  # type: ignore[attr-defined]


def test_tables_rows_and_state_in_one_transaction(database_url: str) -> None:
    warehouse = connect_warehouse(database_url)
    try:
        warehouse.ensure_state_tables()
        warehouse.ensure_state_tables()  # idempotent
        target = warehouse.ensure_table(SPEC)
        with warehouse.transaction() as tx:
            tx.write_rows(target, [(1, "a", 1.0), (2, "b", 2.0)])
            tx.compare_and_set_state("pipeline/demo", "watermark", None, '{"at": 2}', "r1")
        with warehouse.transaction() as tx:
            tx.write_rows(target, [(2, "B", 2.5), (3, "c", 3.0)])
            tx.compare_and_set_state("pipeline/demo", "watermark", '{"at": 2}', '{"at": 3}', "r2")
        assert warehouse.read_state("pipeline/demo", "watermark") == '{"at": 3}'
        assert _count(warehouse, 'SELECT count(*) FROM "events"') == 3
        assert _count(warehouse, "SELECT count(*) FROM \"events\" WHERE name = 'B'") == 1
        # A stale expected value is fenced and the rows of its transaction roll back.
        with pytest.raises(FencedError), warehouse.transaction() as tx:
            tx.write_rows(target, [(4, "d", 4.0)])
            tx.compare_and_set_state("pipeline/demo", "watermark", '{"at": 2}', "x", "r3")
        assert _count(warehouse, 'SELECT count(*) FROM "events"') == 3
        # Append mode, delete_all (replace) and dead letters with their kind.
        with warehouse.transaction() as tx:
            tx.delete_all(target)
            tx.write_rows(target, [(9, "z", 0.0)], mode="append")
            tx.insert_dead_letters(
                "warehouse/events",
                "t",
                [DeadLetterRow(0, 5, None, b"{", "malformed JSON: x")],
                "r4",
            )
        assert _count(warehouse, 'SELECT count(*) FROM "events"') == 1
        (letter,) = warehouse.list_dead_letters("warehouse/events", "t", None)
        assert (letter.offset, letter.reason_kind) == (5, "parse")
    finally:
        warehouse.close()


def test_refused_rows_are_isolated(database_url: str) -> None:
    warehouse = connect_warehouse(database_url)
    try:
        target = warehouse.ensure_table(SPEC)
        warehouse.conn.execute(  # type: ignore[attr-defined]
            'CREATE TABLE "checked" (id bigint PRIMARY KEY, name text, score double precision '
            "CHECK (score >= 0))"
        )
        checked = warehouse.ensure_table(TableSpec("checked", SPEC.columns, SPEC.key))
        rows = [(i, f"n{i}", -1.0 if i in (7, 500, 999) else 1.0) for i in range(1000)]
        with warehouse.transaction() as tx:
            rejected = tx.write_rows(checked, rows, isolate_rejects=True)
            assert tx.write_rows(target, rows, isolate_rejects=True) == []
        assert [r.index for r in rejected] == [7, 500, 999]
        assert all(r.reason.startswith("database: ") for r in rejected)
        assert "check" in rejected[0].reason.lower()
        assert _count(warehouse, 'SELECT count(*) FROM "checked"') == 997
        assert _count(warehouse, 'SELECT count(*) FROM "events"') == 1000
    finally:
        warehouse.close()
