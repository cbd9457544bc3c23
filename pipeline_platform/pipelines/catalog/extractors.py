"""Extractor modules: SQL table, SQL query, CSV file, Parquet file."""

from __future__ import annotations

from pipeline_platform.pipelines.catalog.spec import (
    CHUNK_SIZE,
    COLUMNS,
    IDENT,
    PATH,
    SQL_KINDS,
    ModuleSpec,
    obj,
)

EXTRACTORS: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "sql_table_extractor",
        "extractor",
        "Read a table of a data source in chunks; with incremental_column only the rows past "
        "the stored watermark (the key breaks ties).",
        obj(
            {
                "data_source": IDENT,
                "schema": IDENT,
                "table": IDENT,
                "columns": COLUMNS,
                "incremental_column": IDENT,
                "key": COLUMNS,
                "chunk_size": CHUNK_SIZE,
            },
            ["data_source", "table"],
        ),
        display_name="SQL table",
        category="database",
        icon="table",
        tags=("sql", "incremental", "postgresql", "sqlite"),
        connections=SQL_KINDS,
        output_schema={"columns": "config.columns, else every column of the table"},
        inputs=0,
    ),
    ModuleSpec(
        "sql_query_extractor",
        "extractor",
        "Run one read-only SELECT on a data source, with named :parameters bound from config.",
        obj(
            {
                "data_source": IDENT,
                "query": {"type": "string", "minLength": 1, "maxLength": 100_000},
                "parameters": {
                    "type": "object",
                    "propertyNames": IDENT,
                    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
                },
                "chunk_size": CHUNK_SIZE,
            },
            ["data_source", "query"],
        ),
        display_name="SQL query",
        category="database",
        icon="database_search",
        tags=("sql", "query"),
        connections=SQL_KINDS,
        output_schema={"columns": "the query's result columns"},
        inputs=0,
    ),
    ModuleSpec(
        "csv_extractor",
        "extractor",
        "Read a CSV file (header row) in chunks.",
        obj(
            {
                "path": PATH,
                "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                "columns": COLUMNS,
                "chunk_size": CHUNK_SIZE,
            },
            ["path"],
        ),
        display_name="CSV file",
        category="file",
        icon="csv",
        tags=("file", "csv"),
        output_schema={"columns": "config.columns, else the header row"},
        inputs=0,
    ),
    ModuleSpec(
        "parquet_extractor",
        "extractor",
        "Read a Parquet file in record batches.",
        obj({"path": PATH, "columns": COLUMNS, "chunk_size": CHUNK_SIZE}, ["path"]),
        display_name="Parquet file",
        category="file",
        icon="view_column",
        tags=("file", "parquet", "arrow"),
        output_schema={"columns": "config.columns, else the file's columns"},
        inputs=0,
    ),
)
