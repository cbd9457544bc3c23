"""Presets shipped with the catalog: named configurations, as the old pipeline builder had."""

from __future__ import annotations

from pipeline_platform.registry.document import Preset

BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        name="postgres-incremental",
        module="sql_table_extractor",
        description="PostgreSQL table read incrementally on updated_at, id breaking ties",
        config={
            "data_source": "warehouse",
            "incremental_column": "updated_at",
            "key": ["id"],
            "chunk_size": 100_000,
        },
    ),
    Preset(
        name="non-null-rows",
        module="filter_rows",
        description="Keep rows whose id is not NULL",
        config={"column": "id", "op": "not_null"},
    ),
    Preset(
        name="daily-count",
        module="aggregate",
        description="Rows per day: group by day, count rows into row_count",
        config={"group_by": ["day"], "aggregations": {"id": "count"}, "count_as": "row_count"},
    ),
)
