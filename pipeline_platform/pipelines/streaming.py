"""The streaming fast path: PostgreSQL → PostgreSQL with nothing to do in Python.

When a pipeline is one SQL table extractor and one SQL table loader (append or replace), with at
most a filter and a column list pushed into the source query, there is nothing to transform
per chunk: the source's ``COPY (SELECT …) TO STDOUT (FORMAT csv)`` blocks go straight into the
destination's ``COPY … FROM STDIN (FORMAT csv)`` inside the run's transaction. The destination
table is ensured from the query's column types, as in the chunked path; text CSV also converts
between compatible types (``integer`` → ``bigint``). Incremental reads take the chunked path
(their watermark needs the last row).
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline_platform.pipelines.destinations import logical_type
from pipeline_platform.pipelines.extractors import Extract
from pipeline_platform.pipelines.graph import PipelinePlan, PlanNode
from pipeline_platform.pipelines.loaders import SqlTableLoad
from pipeline_platform.pipelines.sources import PostgresReader, open_reader


def streamable(plan: PipelinePlan, pushed_filters: set[str]) -> tuple[PlanNode, PlanNode] | None:
    """Return (extractor, loader) when the plan can take the fast path, else None."""
    extractors, loaders = plan.of_kind("extractor"), plan.of_kind("loader")
    transformers = plan.of_kind("transformer")
    if len(extractors) != 1 or len(loaders) != 1:
        return None
    source, sink = extractors[0], loaders[0]
    if source.module.name != "sql_table_extractor" or source.config.get("incremental_column"):
        return None
    if sink.module.name != "sql_table_loader" or sink.config.get("mode", "append") == "upsert":
        return None
    if any(node.id not in pushed_filters for node in transformers):
        return None
    return source, sink


def stream_copy(extract: Extract, loader: SqlTableLoad, urls: Mapping[str, str]) -> int | None:
    """Copy the extractor's query into the loader's table as raw CSV; None when not possible.

    Returns:
        The rows copied, or None when source or destination is not PostgreSQL (the caller then
        takes the chunked path; nothing was written).
    """
    reader = open_reader(str(extract.url))
    try:
        if not isinstance(reader, PostgresReader) or not loader.destination.streams_csv:
            return None
        query = extract.query()
        schema = reader.describe(query)
        columns = [(f.name, logical_type(f.type)) for f in schema]
        loader.destination.prepare(loader.target, columns)
        loader.prepared = True
        names = [name for name, _ in columns]
        copied = loader.destination.copy_csv(loader.target, names, reader.copy_csv(query))
        loader.written += copied
        return copied
    finally:
        reader.close()
