"""Registry diff and YAML export: no database needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.store import KindDiff, RegistryDiff, diff_documents
from pipeline_platform.registry.validation import RegistryValidationError, load_document
from pipeline_platform.registry.yaml_io import document_to_data, dump_document, parse_document

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "small_registry.yaml"


@pytest.fixture
def small() -> RegistryDocument:
    """The small fixture registry."""
    return load_document(SMALL)


def test_identical_documents_give_an_empty_diff(small: RegistryDocument) -> None:
    diff = diff_documents(small, small.canonical())
    assert diff.is_empty
    assert diff.lines() == []
    assert diff == RegistryDiff()


def test_diff_reports_added_changed_removed_with_fields(small: RegistryDocument) -> None:
    audio = small.topic("device.audio.raw")
    assert audio is not None and audio.table is not None
    new_table = audio.table.model_copy(update={"time_column": None})
    topics = tuple(
        t.model_copy(update={"json_schema": {"type": "object"}, "table": new_table})
        if t.name == "device.audio.raw"
        else t
        for t in small.topics
        if t.name != "errors.audio.vad"
    )
    flows = tuple(
        f.model_copy(update={"priority": "low"}) if f.name == "network-monitoring" else f
        for f in small.flows
    )
    extra = small.data_sources[0].model_copy(update={"name": "archive", "url_env": "ARCHIVE"})
    new = small.model_copy(
        update={
            "topics": topics,
            "flows": flows,
            "data_sources": (*small.data_sources, extra),
            "pipelines": (),
        }
    )
    diff = diff_documents(small, new)
    assert diff.topics == KindDiff(
        added=(), changed={"device.audio.raw": ("schema", "table")}, removed=("errors.audio.vad",)
    )
    assert diff.lines() == [
        "~ topic device.audio.raw: schema, table",
        "- topic errors.audio.vad",
        "~ flow network-monitoring: priority",
        "+ data_source archive",
        "- pipeline daily-sales-sync",
    ]
    summary = diff.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["flows"] == {
        "added": [],
        "changed": {"network-monitoring": ["priority"]},
        "removed": [],
    }
    assert summary["data_sources"]["added"] == ["archive"]
    assert not diff.is_empty


def test_dump_is_canonical_and_stable(small: RegistryDocument) -> None:
    text = dump_document(small)
    assert text.startswith("version: 1\ntopics:\n- name: device.audio.raw\n  category: device\n")
    shuffled = small.model_copy(update={"topics": tuple(reversed(small.topics))})
    assert dump_document(shuffled) == text
    assert dump_document(parse_document(text)) == text
    assert parse_document(text) == small.canonical()


def test_dump_omits_defaults_and_keeps_declared_key_order(small: RegistryDocument) -> None:
    data = yaml.safe_load(dump_document(small))
    assert list(data) == ["version", "topics", "flows", "data_sources", "pipelines"]
    wifi = next(t for t in data["topics"] if t["name"] == "device.network.wifi.raw")
    assert list(wifi) == [
        "name",
        "category",
        "source",
        "datatype",
        "description",
        "partitions",
        "retention_days",
        "api_endpoints",
        "table",
    ]
    assert wifi["api_endpoints"] == [{"path": "/network/wifi"}]  # method POST is the default
    assert "data_source" not in wifi["table"]  # "warehouse" is the default
    assert wifi["table"]["mappings"][4] == {
        "source": "payload.tags[0]",
        "column": "first_tag",
        "type": "string",
        "default": "none",
    }
    assert data["data_sources"] == [
        {"name": "shop", "url_env": "SHOP_DB_URL"},
        {"name": "warehouse", "url_env": "PIPELINE_WAREHOUSE_URL"},
    ]


def test_empty_document_dumps_only_the_version() -> None:
    assert dump_document(RegistryDocument()) == "version: 1\n"
    assert document_to_data(RegistryDocument()) == {"version": 1}


def test_unicode_and_long_strings_round_trip(small: RegistryDocument) -> None:
    long = "Größe " + "x" * 300
    topics = tuple(
        t.model_copy(update={"description": long}) if t.name == "errors.audio.vad" else t
        for t in small.topics
    )
    doc = small.model_copy(update={"topics": topics})
    text = dump_document(doc)
    assert f"description: {long}\n" in text
    assert parse_document(text) == doc.canonical()


def test_parse_document_refuses_bad_text() -> None:
    with pytest.raises(RegistryValidationError, match="invalid YAML"):
        parse_document("topics: [\n")
    with pytest.raises(RegistryValidationError, match="unknown key"):
        parse_document("version: 1\nbogus: 1\n")
