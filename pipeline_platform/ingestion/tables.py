"""A topic's table configuration as the warehouse sees it."""

from __future__ import annotations

from pipeline_platform.registry.document import TableConfig, Topic
from pipeline_platform.registry.rules import table_asset_name
from pipeline_platform.warehouse import TableSpec


def asset_key_of(table: TableConfig) -> str:
    """Return the asset key string of an ingested table: ``<data_source>/<table>``."""
    return table_asset_name(table.data_source, table.name)


def table_spec_of(table: TableConfig) -> TableSpec:
    """Return the warehouse table spec of a table configuration (columns in mapping order)."""
    return TableSpec.of(
        table.name,
        [(mapping.column, mapping.type) for mapping in table.mappings],
        key=table.upsert_key,
        schema=table.db_schema,
        time_column=table.time_column,
    )


def table_of(topic: Topic) -> TableConfig:
    """Return the topic's table configuration.

    Raises:
        ValueError: The topic has no table.
    """
    if topic.table is None:
        raise ValueError(f"topic {topic.name} has no table configured: nothing to ingest")
    return topic.table
