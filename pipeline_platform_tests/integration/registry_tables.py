"""Registry test helpers: the small registry, a migrated registry, table counts and dumps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import load_document

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "small_registry.yaml"
TABLES = (
    "kafka_topics",
    "kafka_topic_schemas",
    "topic_api_endpoints",
    "topic_table_configs",
    "topic_field_mappings",
    "pipeline_flows",
    "pipeline_stages",
    "pipeline_stage_topics",
    "data_sources",
    "modules",
    "pipelines",
    "registry_revisions",
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated, empty registry."""
    engine = create_registry_engine(database_url)
    upgrade_registry(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def small() -> RegistryDocument:
    """The small fixture registry."""
    return load_document(SMALL)


def counts(engine: Engine) -> dict[str, int]:
    """Row count of every registry table."""
    with engine.connect() as connection:
        return {
            name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in TABLES
        }


def dump_tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table, sorted, for exact before/after comparisons."""
    with engine.connect() as connection:
        return {
            name: sorted(
                (tuple(row) for row in connection.execute(text(f"SELECT * FROM {name}"))),
                key=repr,
            )
            for name in TABLES
        }


def with_topic(document: RegistryDocument, name: str, **changes: Any) -> RegistryDocument:
    """Return ``document`` with the topic ``name`` updated (by field name)."""
    topics = tuple(t.model_copy(update=changes) if t.name == name else t for t in document.topics)
    return document.model_copy(update={"topics": topics})
