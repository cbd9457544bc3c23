"""A cheap content fingerprint of the registry tables: tells a change apart from none.

The fingerprint hashes every row of the tables that hold registry content (not the revision
history, not the module catalog mirrored from code), in primary-key order. It changes with any
edit, including ones made directly in SQL, and costs one SELECT per table.
"""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy import Connection, Engine, Table, select

from pipeline_platform.registry.models import (
    data_sources,
    kafka_topic_schemas,
    kafka_topics,
    pipeline_flows,
    pipeline_stage_topics,
    pipeline_stages,
    pipelines,
    topic_api_endpoints,
    topic_field_mappings,
    topic_table_configs,
)

CONTENT_TABLES: tuple[Table, ...] = (
    kafka_topics,
    kafka_topic_schemas,
    topic_api_endpoints,
    topic_table_configs,
    topic_field_mappings,
    pipeline_flows,
    pipeline_stages,
    pipeline_stage_topics,
    data_sources,
    pipelines,
)


def content_fingerprint(bind: Engine | Connection) -> str:
    """Return a SHA-256 (hex, 32 characters) of the registry's content tables.

    Args:
        bind: Engine or open connection of a migrated registry.
    """
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return content_fingerprint(connection)
    digest = hashlib.sha256()
    for table in CONTENT_TABLES:
        digest.update(table.name.encode())
        order = list(table.primary_key.columns)
        for row in bind.execute(select(table).order_by(*order)):
            digest.update(orjson.dumps(tuple(row), default=str))
    return digest.hexdigest()[:32]
