"""Graph validation: every problem at once with its entry path; presets; the run plan."""

from __future__ import annotations

from typing import Any

from pipeline_platform.pipelines.graph import build_plan, presets_by_name
from pipeline_platform.registry.validation import Problem, validate_data


def _data(nodes: list[dict[str, Any]], edges: list[list[str]], **extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "data_sources": [
            {"name": "shop", "kind": "postgresql", "url_env": "SHOP_URL"},
            {"name": "lite", "kind": "sqlite", "url_env": "LITE_URL"},
        ],
        "pipelines": [
            {"name": "p", "schedule": "0 * * * *", "graph": {"nodes": nodes, "edges": edges}}
        ],
        **extra,
    }


READ = {
    "id": "read",
    "module": "sql_table_extractor",
    "config": {"data_source": "shop", "table": "orders", "columns": ["id", "status"]},
}
WRITE = {"id": "write", "module": "sql_table_loader",
         "config": {"data_source": "warehouse", "table": "out"}}  # fmt: skip


def problems(data: dict[str, Any]) -> list[Problem]:
    document, found = validate_data(data)
    assert (document is None) == bool(found)
    return found


def test_columns_missing_upstream_are_reported_with_paths() -> None:
    nodes = [
        READ,
        {
            "id": "f",
            "module": "filter_rows",
            "config": {"column": "amount", "op": "gt", "value": 1},
        },
        {"id": "sel", "module": "select_columns", "config": {"columns": ["id"]}},
        {**WRITE, "config": {**WRITE["config"], "mode": "upsert", "key": ["status"]}},
    ]
    assert problems(_data(nodes, [["read", "f"], ["f", "sel"], ["sel", "write"]])) == [
        Problem("pipelines[0].graph.nodes[1].config", "column 'amount' is not produced by 'read'"),
        Problem("pipelines[0].graph.nodes[3].config", "column 'status' is not produced by 'sel'"),
    ]


def test_join_needs_two_inputs_and_a_right_input() -> None:
    nodes = [READ, {"id": "j", "module": "join", "config": {"right": "other", "on": ["id"]}},
             WRITE]  # fmt: skip
    assert problems(_data(nodes, [["read", "j"], ["j", "write"]])) == [
        Problem("pipelines[0].graph.nodes[1]", "join takes 2 input(s), 'j' has 1"),
    ]
    second = {**READ, "id": "read2"}
    nodes = [READ, second, {"id": "j", "module": "join", "config": {"right": "nope", "on": ["id"]}},
             WRITE]  # fmt: skip
    edges = [["read", "j"], ["read2", "j"], ["j", "write"]]
    assert problems(_data(nodes, edges)) == [
        Problem("pipelines[0].graph.nodes[2].config.right", "'nope' is not an input of 'j'")
    ]
    nodes[2] = {"id": "j", "module": "join", "config": {"right": "read2", "on": ["id"]}}
    assert problems(_data(nodes, edges)) == []
    plan = build_plan(validate_data(_data(nodes, edges))[0].pipelines[0])  # type: ignore[union-attr]
    assert plan.node("j").parents == ("read", "read2")


def test_data_source_kind_must_match_module_connections_and_expression_is_checked() -> None:
    nodes = [
        {"id": "read", "module": "csv_extractor", "config": {"path": "x.csv"}},
        {"id": "d", "module": "derive_column", "config": {"column": "x", "expression": "eval(1)"}},
        WRITE,
    ]
    found = problems(_data(nodes, [["read", "d"], ["d", "write"]]))
    assert found == [
        Problem("pipelines[0].graph.nodes[1].config.expression",
                "unknown function 'eval' (known: lower, upper, trim, length, abs, round, floor, "
                "ceil, coalesce, concat, if_else, is_null, string, year, month, day, hour, date)"),
    ]  # fmt: skip


def test_presets_resolve_validate_and_refuse() -> None:
    presets = [
        {"name": "paid-only", "module": "filter_rows",
         "config": {"column": "status", "op": "eq", "value": "paid"}},
        {"name": "bad", "module": "sql_table_loader", "config": {"mode": "merge"}},
    ]  # fmt: skip
    nodes = [READ, {"id": "f", "module": "filter_rows", "preset": "paid-only"}, WRITE]
    edges = [["read", "f"], ["f", "write"]]
    assert problems(_data(nodes, edges, presets=presets)) == [
        Problem("presets[1].config.mode", "'merge' is not one of ['append', 'replace', 'upsert']")
    ]
    document, found = validate_data(_data(nodes, edges, presets=presets[:1]))
    assert document is not None and not found
    plan = build_plan(document.pipelines[0], presets_by_name(document.presets))
    assert plan.node("f").config == {"column": "status", "op": "eq", "value": "paid"}
    nodes[1] = {"id": "f", "module": "aggregate", "preset": "paid-only"}
    assert problems(_data(nodes, edges, presets=presets[:1])) == [
        Problem("pipelines[0].graph.nodes[1].preset", "preset 'paid-only' is for filter_rows")
    ]
    nodes[1] = {"id": "f", "module": "filter_rows", "preset": "ghost"}
    assert problems(_data(nodes, edges)) == [
        Problem("pipelines[0].graph.nodes[1].preset", "unknown preset 'ghost'")
    ]


def test_shipped_preset_with_node_override() -> None:
    nodes = [{"id": "read", "module": "sql_table_extractor", "preset": "postgres-incremental",
              "config": {"data_source": "shop", "table": "orders"}}, WRITE]  # fmt: skip
    document, found = validate_data(_data(nodes, [["read", "write"]]))
    assert not found and document is not None
    plan = build_plan(document.pipelines[0])
    assert plan.node("read").config["incremental_column"] == "updated_at"
    assert plan.node("read").config["data_source"] == "shop"


def test_incremental_rules_and_timezone() -> None:
    read = {**READ, "config": {**READ["config"], "incremental_column": "status"}}
    data = _data([read, {**WRITE, "config": {**WRITE["config"], "mode": "replace"}}],
                 [["read", "write"]])  # fmt: skip
    data["pipelines"][0]["timezone"] = "Mars/Olympus"
    assert problems(data) == [
        Problem("pipelines[0].graph.nodes[0].config.key",
                "an incremental extractor needs a key (ties on the cursor)"),
        Problem("pipelines[0].timezone", "unknown time zone 'Mars/Olympus'"),
    ]  # fmt: skip
    read["config"]["key"] = ["id"]
    data["pipelines"][0]["timezone"] = "Europe/Oslo"
    assert problems(data) == [
        Problem("pipelines[0].graph.nodes[1].config.mode",
                "replace cannot follow an incremental read"),
    ]  # fmt: skip
    data["pipelines"][0]["mode"] = "realtime"
    data["pipelines"][0]["graph"]["nodes"][0] = READ
    data["pipelines"][0]["graph"]["nodes"][1] = WRITE
    assert problems(data) == [
        Problem(
            "pipelines[0].mode", "a realtime pipeline needs an extractor with incremental_column"
        )
    ]
