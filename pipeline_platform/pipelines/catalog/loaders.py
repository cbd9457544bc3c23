"""Loader modules: SQL table (append / replace / upsert), CSV file, Parquet file."""

from __future__ import annotations

from pipeline_platform.pipelines.catalog.spec import (
    COLUMNS,
    IDENT,
    PATH,
    SQL_KINDS,
    ModuleSpec,
    obj,
)

LOADERS: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "sql_table_loader",
        "loader",
        "Write rows into a table of a data source: append, replace (atomic swap) or upsert on a "
        "key. The table is created when missing and new columns are added.",
        obj(
            {
                "data_source": IDENT,
                "schema": IDENT,
                "table": IDENT,
                "mode": {"enum": ["append", "replace", "upsert"]},
                "key": COLUMNS,
            },
            ["data_source", "table"],
            **{
                "if": {"properties": {"mode": {"const": "upsert"}}, "required": ["mode"]},
                "then": {"required": ["key"]},
            },
        ),
        display_name="SQL table",
        category="database",
        icon="table",
        tags=("sql", "copy", "upsert"),
        connections=SQL_KINDS,
        input_schema={"columns": "config.key (upsert)"},
    ),
    ModuleSpec(
        "csv_loader",
        "loader",
        "Write rows into a CSV file with a header row (replaced atomically at the end of the run).",
        obj(
            {"path": PATH, "delimiter": {"type": "string", "minLength": 1, "maxLength": 1}},
            ["path"],
        ),
        display_name="CSV file",
        category="file",
        icon="csv",
        tags=("file", "csv"),
    ),
    ModuleSpec(
        "parquet_loader",
        "loader",
        "Write rows into a Parquet file (replaced atomically at the end of the run).",
        obj({"path": PATH}, ["path"]),
        display_name="Parquet file",
        category="file",
        icon="view_column",
        tags=("file", "parquet", "arrow"),
    ),
)
