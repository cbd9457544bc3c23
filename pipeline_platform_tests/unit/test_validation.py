"""Every validation rule of spec §2.1 refused with its entry path and a plain reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_platform.registry.validation import Problem, validate_data

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE.read_text())


def problems_after(base: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> list[Problem]:
    data = copy.deepcopy(base)
    edit(data)
    document, problems = validate_data(data)
    assert document is None
    return problems


def test_fixture_is_valid(base: dict[str, Any]) -> None:
    document, problems = validate_data(base)
    assert problems == []
    assert document is not None
    assert [t.name for t in document.topics][:2] == ["device.audio.raw", "device.network.wifi.raw"]


def test_unknown_key_in_nested_entry(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][1]["table"]["mappings"][2]["colour"] = "red"

    assert problems_after(base, edit) == [
        Problem("topics[1].table.mappings[2].colour", "unknown key")
    ]


def test_unknown_top_level_key(base: dict[str, Any]) -> None:
    assert problems_after(base, lambda d: d.update(extras=[])) == [Problem("extras", "unknown key")]


def test_unknown_field_type(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][0]["table"]["mappings"][2]["type"] = "int"

    [problem] = problems_after(base, edit)
    assert problem.path == "topics[0].table.mappings[2].type"
    assert "'integer'" in problem.reason


def test_missing_required_key(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        del d["topics"][0]["table"]["mappings"][0]["column"]

    assert problems_after(base, edit) == [
        Problem("topics[0].table.mappings[0].column", "required key is missing")
    ]


@pytest.mark.parametrize(
    ("section", "index", "what"),
    [("topics", 1, "topic"), ("flows", 1, "flow"), ("data_sources", 1, "data source")],
)
def test_duplicate_names(base: dict[str, Any], section: str, index: int, what: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        d[section][index]["name"] = d[section][0]["name"]

    name = base[section][0]["name"]
    expected = Problem(
        f"{section}[{index}].name", f"duplicate {what} {name!r} (first at {section}[0].name)"
    )
    assert expected in problems_after(base, edit)


def test_duplicate_stage_in_flow(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flows"][0]["stages"][1]["name"] = "vad-processing"

    assert problems_after(base, edit) == [
        Problem(
            "flows[0].stages[1].name",
            "duplicate stage 'vad-processing' (first at flows[0].stages[0].name)",
        )
    ]


def test_duplicate_column(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][3]["table"]["mappings"][2]["column"] = "word"

    assert problems_after(base, edit) == [
        Problem(
            "topics[3].table.mappings[2].column",
            "duplicate column 'word' (first at topics[3].table.mappings[1].column)",
        )
    ]


def test_same_table_for_two_topics(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][3]["table"]["name"] = "device_audio_raw"

    assert problems_after(base, edit) == [
        Problem(
            "topics[3].table.name",
            "duplicate table 'warehouse.device_audio_raw' (first at topics[0].table.name)",
        )
    ]


def test_stage_names_unknown_topic(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flows"][0]["stages"][1]["outputs"] = ["media.text.missing"]

    assert problems_after(base, edit) == [
        Problem("flows[0].stages[1].outputs[0]", "unknown topic 'media.text.missing'")
    ]


def test_table_names_unknown_data_source(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][0]["table"]["data_source"] = "lake"

    assert problems_after(base, edit) == [
        Problem("topics[0].table.data_source", "unknown data source 'lake'")
    ]


def test_pipeline_names_unknown_data_source(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["nodes"][0]["config"]["data_source"] = "crm"

    assert problems_after(base, edit) == [
        Problem("pipelines[0].graph.nodes[0].config.data_source", "unknown data source 'crm'")
    ]


def test_pipeline_names_unknown_module(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["nodes"][1]["module"] = "magic"

    assert problems_after(base, edit) == [
        Problem("pipelines[0].graph.nodes[1].module", "unknown module 'magic'")
    ]


def test_module_config_fails_its_schema(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["nodes"][2]["config"]["mode"] = "merge"
        del d["pipelines"][0]["graph"]["nodes"][0]["config"]["table"]

    assert problems_after(base, edit) == [
        Problem("pipelines[0].graph.nodes[0].config", "'table' is a required property"),
        Problem(
            "pipelines[0].graph.nodes[2].config.mode",
            "'merge' is not one of ['append', 'replace', 'upsert']",
        ),
    ]


def test_cycle_between_stages(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flows"][0]["stages"][1]["outputs"] = ["device.audio.raw"]

    assert problems_after(base, edit) == [
        Problem(
            "flows",
            "stages form a cycle of topics: device.audio.raw -> media.audio.vad_filtered "
            "-> device.audio.raw",
        )
    ]


def test_cycle_in_pipeline_graph(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["nodes"].append(
            {"id": "again", "module": "filter_rows", "config": {"column": "x", "op": "not_null"}}
        )
        d["pipelines"][0]["graph"]["edges"] += [["paid", "again"], ["again", "paid"]]

    assert Problem("pipelines[0].graph.edges", "cycle: again -> paid -> again") in problems_after(
        base, edit
    )


def test_graph_must_start_at_extractor(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["edges"] = [["paid", "write"]]
        d["pipelines"][0]["graph"]["nodes"].pop(0)

    assert problems_after(base, edit) == [
        Problem(
            "pipelines[0].graph.nodes[0]",
            "the graph starts at 'paid', a transformer, not an extractor",
        )
    ]


def test_graph_must_end_at_loader(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["edges"] = [["read", "paid"]]
        d["pipelines"][0]["graph"]["nodes"].pop(2)

    assert problems_after(base, edit) == [
        Problem(
            "pipelines[0].graph.nodes[1]", "the graph ends at 'paid', a transformer, not a loader"
        )
    ]


def test_unconnected_node(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["nodes"].append(
            {"id": "lonely", "module": "filter_rows", "config": {"column": "x", "op": "not_null"}}
        )

    assert problems_after(base, edit) == [
        Problem("pipelines[0].graph.nodes[3]", "node 'lonely' is not connected to the graph")
    ]


def test_edge_to_unknown_node(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["graph"]["edges"].append(["paid", "ghost"])

    assert problems_after(base, edit) == [
        Problem("pipelines[0].graph.edges[2][1]", "unknown node 'ghost'")
    ]


@pytest.mark.parametrize("cron", ["61 * * * *", "every day", "* * *"])
def test_bad_cron_string(base: dict[str, Any], cron: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["pipelines"][0]["schedule"] = cron

    assert problems_after(base, edit) == [
        Problem("pipelines[0].schedule", f"not a valid cron string: {cron!r}")
    ]


@pytest.mark.parametrize("name", ["x; drop table y", "Robert'); DROP TABLE students;--", "1abc"])
def test_unsafe_table_name(base: dict[str, Any], name: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][0]["table"]["name"] = name

    [problem] = problems_after(base, edit)
    assert problem.path == "topics[0].table.name"
    assert problem.reason.startswith("not a safe SQL identifier")


def test_unsafe_column_name(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][3]["table"]["mappings"][1]["column"] = 'word"; drop table y; --'

    [problem] = problems_after(base, edit)
    assert problem.path == "topics[3].table.mappings[1].column"
    assert problem.reason.startswith("not a safe SQL identifier")


def test_upsert_key_must_be_mapped(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][0]["table"]["upsert_key"] = ["device_id", "chunk_id"]

    assert problems_after(base, edit) == [
        Problem("topics[0].table.upsert_key[1]", "'chunk_id' is not a mapped column")
    ]


def test_time_column_must_be_mapped(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][1]["table"]["time_column"] = "scanned_at"

    assert problems_after(base, edit) == [
        Problem("topics[1].table.time_column", "'scanned_at' is not a mapped column")
    ]


def test_invalid_json_schema(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][0]["schema"] = {"type": "objekt"}

    [problem] = problems_after(base, edit)
    assert problem.path == "topics[0].schema"
    assert problem.reason.startswith("not a valid JSON Schema")


def test_bad_topic_name_and_source_path(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][2]["name"] = "media audio"
        d["topics"][3]["table"]["mappings"][0]["source"] = "payload..x"

    paths = [p.path for p in problems_after(base, edit)]
    assert "topics[2].name" in paths
    assert "topics[3].table.mappings[0].source" in paths


def test_batch_pipeline_needs_schedule(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        del d["pipelines"][0]["schedule"]

    assert problems_after(base, edit) == [
        Problem("pipelines[0].schedule", "a batch pipeline needs a cron schedule")
    ]


def test_every_problem_reported_at_once_in_file_order(base: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        for i in range(12):
            d["topics"].append({"name": f"extra.{i}", "partitions": 0})
        d["topics"][0]["table"]["name"] = "bad name"
        d["pipelines"][0]["schedule"] = "nope"

    problems = problems_after(base, edit)
    assert [p.path for p in problems] == [
        "pipelines[0].schedule",
        "topics[0].table.name",
        *[f"topics[{i}].partitions" for i in range(5, 17)],
    ]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("max_lag_seconds", 0, "greater than 0"),
        ("max_lag_seconds", "soon", "valid integer"),
        ("max_dead_letter_ratio", 1.5, "less than or equal to 1"),
        ("max_dead_letter_ratio", -0.1, "greater than or equal to 0"),
    ],
)
def test_monitoring_thresholds_are_validated(
    base: dict[str, Any], key: str, value: Any, reason: str
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["topics"][1]["table"][key] = value

    [problem] = problems_after(base, edit)
    assert problem.path == f"topics[1].table.{key}"
    assert reason in problem.reason
