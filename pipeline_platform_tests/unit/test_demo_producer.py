"""Demo events follow the demo registry: every synthesized message maps and validates."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
import pytest

from pipeline_platform.dev.producer import synthesize_message
from pipeline_platform.dev.stack import demo_registry_path
from pipeline_platform.ingestion.decode import DecodeOptions, compile_validator, transform_batch
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.registry.validation import load_document

DEMO = load_document(demo_registry_path())


@pytest.mark.parametrize("topic", [t for t in DEMO.topics if t.table], ids=lambda t: t.name)
def test_synthesized_messages_are_ingestible(topic) -> None:  # type: ignore[no-untyped-def]
    assert topic.table is not None
    rng = random.Random(3)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    messages = [
        (
            0,
            offset,
            None,
            orjson.dumps(synthesize_message(topic.table, rng, now, topic.json_schema)),
        )
        for offset in range(50)
    ]
    batch = transform_batch(
        messages,
        compile_mapping(topic.table),
        compile_validator(topic.json_schema),
        DecodeOptions(),
    )
    assert [d.reason for d in batch.dead_letters] == []
    assert batch.rows
    assert batch.last_offsets == {0: 49}


def test_nested_paths_and_indexes_are_built() -> None:
    wifi = next(
        t for t in DEMO.topics if t.table and any("[" in m.source for m in t.table.mappings)
    )
    assert wifi.table is not None
    message = synthesize_message(wifi.table, random.Random(1), datetime.now(UTC))
    indexed = next(m for m in wifi.table.mappings if "[" in m.source)
    head = indexed.source.split("[")[0].split(".")
    node = message
    for key in head:
        node = node[key]
    assert isinstance(node, list) and node
