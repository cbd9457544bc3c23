"""Pipeline runs on real databases: PG→PG, SQLite→PG, files→PG, incremental, upsert, replace."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline_platform.pipelines.connections import MissingCredentials
from pipeline_platform_tests.pipelines_helpers import document, pg, pipeline, run

SRC = {"src": "SRC_URL", "dst": "DST_URL"}


@pytest.fixture
def env(postgres_admin_url: str) -> dict[str, str]:
    from pipeline_platform_tests.servers import create_database

    src, dst = create_database(postgres_admin_url), create_database(postgres_admin_url)
    pg(
        src,
        "CREATE TABLE orders (order_id bigint PRIMARY KEY, status text, amount double precision,"
        " updated_at timestamptz, note text)",
    )
    pg(
        src,
        "INSERT INTO orders VALUES "
        "(1, 'paid', 10.5, '2024-01-01 10:00+00', 'a,b'),"
        "(2, 'open', 3.0, '2024-01-01 11:00+00', NULL),"
        "(3, 'paid', 7.25, '2024-01-01 11:00+00', ''),"
        "(4, NULL, 1.0, '2024-01-02 09:00+00', 'line\nbreak')",
    )
    return {"SRC_URL": src, "DST_URL": dst}


def _extract(**config: Any) -> dict[str, Any]:
    return {"id": "read", "module": "sql_table_extractor",
            "config": {"data_source": "src", "table": "orders", **config}}  # fmt: skip


def _load(**config: Any) -> dict[str, Any]:
    return {"id": "write", "module": "sql_table_loader",
            "config": {"data_source": "dst", "table": "out", **config}}  # fmt: skip


def _rows(url: str, sql: str = "SELECT * FROM out ORDER BY 1") -> list[tuple[Any, ...]]:
    return pg(url, sql)


def test_pg_to_pg_filter_pushed_down_and_types_kept(env: dict[str, str]) -> None:
    paid = {"id": "paid", "module": "filter_rows",
            "config": {"column": "status", "op": "eq", "value": "paid"}}  # fmt: skip
    doc = document([pipeline([_extract(), paid, _load()])], SRC)
    result = run(doc, env)
    assert result.nodes["paid"].pushed_down
    assert result.rows_read == 2 and result.rows_written == 2
    rows = _rows(env["DST_URL"], "SELECT order_id, status, amount, note FROM out ORDER BY 1")
    assert rows == [(1, "paid", 10.5, "a,b"), (3, "paid", 7.25, "")]
    types = dict(
        pg(env["DST_URL"], "SELECT column_name, data_type FROM information_schema.columns "
           "WHERE table_name = 'out'")
    )  # fmt: skip
    assert types["order_id"] == "bigint"
    assert types["updated_at"] == "timestamp with time zone"


def test_append_keeps_nulls_and_newlines(env: dict[str, str]) -> None:
    doc = document([pipeline([_extract(), _load(mode="append")])], SRC)
    run(doc, env)
    rows = _rows(env["DST_URL"], "SELECT order_id, status, note FROM out ORDER BY 1")
    assert rows == [
        (1, "paid", "a,b"),
        (2, "open", None),
        (3, "paid", ""),
        (4, None, "line\nbreak"),
    ]


def test_upsert_rerun_is_idempotent(env: dict[str, str]) -> None:
    doc = document([pipeline([_extract(), _load(mode="upsert", key=["order_id"])])], SRC)
    run(doc, env)
    pg(env["SRC_URL"], "UPDATE orders SET amount = 99 WHERE order_id = 2")
    run(doc, env)
    run(doc, env)
    rows = _rows(env["DST_URL"], "SELECT order_id, amount FROM out ORDER BY 1")
    assert rows == [(1, 10.5), (2, 99.0), (3, 7.25), (4, 1.0)]


def test_incremental_reads_only_new_rows_including_ties(env: dict[str, str]) -> None:
    extract = _extract(incremental_column="updated_at", key=["order_id"], chunk_size=1)
    doc = document([pipeline([extract, _load(mode="upsert", key=["order_id"])])], SRC)
    first = run(doc, env)
    assert first.rows_read == 4
    assert first.watermarks["read"][1] == ["2024-01-02T09:00:00+00:00", 4]
    again = run(doc, env)
    assert again.rows_read == 0 and again.watermarks["read"] == (first.watermarks["read"][1],) * 2
    # A tie on the cursor value with a higher key, and a later row: both read, nothing else.
    pg(env["SRC_URL"], "INSERT INTO orders VALUES (5, 'paid', 2, '2024-01-02 09:00+00', 't'),"
       " (6, 'paid', 2, '2024-01-03 00:00+00', 'n')")  # fmt: skip
    third = run(doc, env)
    assert third.rows_read == 2
    assert [r[0] for r in _rows(env["DST_URL"], "SELECT order_id FROM out ORDER BY 1")] == [
        1, 2, 3, 4, 5, 6,
    ]  # fmt: skip
    state = pg(env["DST_URL"], "SELECT scope, name, value FROM pp_state")
    assert state == [("pipeline:p", "watermark:read", '["2024-01-03T00:00:00+00:00",6]')]


def test_replace_swaps_the_whole_table(env: dict[str, str]) -> None:
    doc = document([pipeline([_extract(), _load(mode="replace")])], SRC)
    run(doc, env)
    pg(env["SRC_URL"], "DELETE FROM orders WHERE order_id > 1")
    run(doc, env)
    assert [r[0] for r in _rows(env["DST_URL"], "SELECT order_id FROM out")] == [1]
    leftovers = pg(env["DST_URL"], "SELECT tablename FROM pg_tables WHERE tablename LIKE 'pp_new%'")
    assert leftovers == []


def test_failed_run_leaves_destination_untouched(env: dict[str, str]) -> None:
    doc = document([pipeline([_extract(), _load(mode="replace")])], SRC)
    run(doc, env)
    bad = {"id": "bad", "module": "derive_column",
           "config": {"column": "x", "expression": "no_such_column + 1"}}  # fmt: skip
    broken = document([pipeline([_extract(), bad, _load(mode="replace")])], SRC)
    with pytest.raises(KeyError):
        run(broken, env)
    assert len(_rows(env["DST_URL"])) == 4


def test_sqlite_to_pg(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)",
                         [(1, "pen", 1.5), (2, None, 2.0), (3, "ink", None)])  # fmt: skip
    doc = document(
        [pipeline([
            {"id": "read", "module": "sql_table_extractor",
             "config": {"data_source": "shop", "table": "items", "chunk_size": 2}},
            {"id": "cheap", "module": "filter_rows", "config": {"column": "price", "op": "lt",
                                                                 "value": 1.8}},
            _load(),
        ])],
        {"shop": "SHOP_SQLITE", "dst": "DST_URL"},
    )  # fmt: skip
    result = run(doc, {**env, "SHOP_SQLITE": f"sqlite:///{path}"})
    assert result.nodes["cheap"].pushed_down
    assert _rows(env["DST_URL"], "SELECT id, name, price FROM out") == [(1, "pen", 1.5)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_to_pg(env: dict[str, str], tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "city": ["Oslo", "Rome", None], "t": [1.0, 2.5, 3.0]})
    path = tmp_path / f"cities.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    doc = document(
        [pipeline([
            {"id": "read", "module": f"{fmt}_extractor", "config": {"path": str(path)}},
            {"id": "warm", "module": "filter_rows", "config": {"column": "t", "op": "ge",
                                                                "value": 2}},
            _load(),
        ])],
        {"dst": "DST_URL"},
    )  # fmt: skip
    run(doc, env)
    assert _rows(env["DST_URL"], "SELECT id, city, t FROM out ORDER BY id") == [
        (2, "Rome", 2.5), (3, None, 3.0),
    ]  # fmt: skip


def test_pg_to_files(env: dict[str, str], tmp_path: Path) -> None:
    nodes = [_extract(columns=["order_id", "status"]),
             {"id": "csv", "module": "csv_loader", "config": {"path": str(tmp_path / "o.csv")}},
             {"id": "pq", "module": "parquet_loader",
              "config": {"path": str(tmp_path / "o.parquet")}}]  # fmt: skip
    doc = document([pipeline(nodes, [["read", "csv"], ["read", "pq"]])], SRC)
    run(doc, env)
    assert pd.read_csv(tmp_path / "o.csv")["order_id"].tolist() == [1, 2, 3, 4]
    assert pd.read_parquet(tmp_path / "o.parquet")["status"].tolist()[:3] == [
        "paid",
        "open",
        "paid",
    ]


def test_missing_environment_variable_is_one_line(env: dict[str, str]) -> None:
    doc = document([pipeline([_extract(), _load()])], SRC)
    with pytest.raises(MissingCredentials) as caught:
        run(doc, {"DST_URL": env["DST_URL"]})
    assert str(caught.value) == "data source 'src': environment variable SRC_URL is not set"


def test_sql_query_extractor_binds_parameters_and_is_read_only(env: dict[str, str]) -> None:
    query = {"id": "read", "module": "sql_query_extractor",
             "config": {"data_source": "src", "query": "SELECT order_id, amount FROM orders "
                        "WHERE status = :status ORDER BY order_id",
                        "parameters": {"status": "paid"}}}  # fmt: skip
    doc = document([pipeline([query, _load()])], SRC)
    assert run(doc, env).rows_written == 2
    assert _rows(env["DST_URL"], "SELECT order_id, amount FROM out ORDER BY 1") == [
        (1, 10.5), (3, 7.25),
    ]  # fmt: skip
    for sql in (
        "DELETE FROM orders RETURNING order_id",
        "WITH d AS (DELETE FROM orders RETURNING order_id) SELECT * FROM d",
    ):
        writes = {**query, "config": {"data_source": "src", "query": sql}}
        doc = document([pipeline([writes, _load(table="out2")])], SRC)
        with pytest.raises(Exception, match=r"read-only|syntax error|must not contain"):
            run(doc, env)
    assert len(pg(env["SRC_URL"], "SELECT * FROM orders")) == 4


def test_join_two_sources(env: dict[str, str]) -> None:
    pg(env["SRC_URL"], "CREATE TABLE statuses (status text, label text)")
    pg(env["SRC_URL"], "INSERT INTO statuses VALUES ('paid', 'Paid'), ('open', 'Open')")
    nodes = [
        _extract(columns=["order_id", "status"]),
        {"id": "labels", "module": "sql_table_extractor",
         "config": {"data_source": "src", "table": "statuses"}},
        {"id": "j", "module": "join", "config": {"right": "labels", "on": ["status"]}},
        _load(),
    ]  # fmt: skip
    edges = [["read", "j"], ["labels", "j"], ["j", "write"]]
    doc = document([pipeline(nodes, edges)], SRC)
    result = run(doc, env)
    assert result.nodes["j"].rows_in == 6 and result.nodes["j"].rows_out == 3
    assert _rows(env["DST_URL"], "SELECT order_id, label FROM out ORDER BY 1") == [
        (1, "Paid"), (2, "Open"), (3, "Paid"),
    ]  # fmt: skip
