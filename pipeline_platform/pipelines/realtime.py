"""The realtime probe: does any incremental source have rows past its stored watermark?

One query per incremental extractor (``SELECT 1 ... WHERE (cursor, key) > watermark LIMIT 1``)
and one state read in the destination; no DDL, so a sensor tick stays cheap and side-effect free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pipeline_platform.pipelines.connections import data_source_url
from pipeline_platform.pipelines.graph import PipelinePlan
from pipeline_platform.pipelines.sources import Query, open_reader
from pipeline_platform.pipelines.watermark import state_key
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.warehouse import connect_warehouse


def stored_watermark(url: str, pipeline: str, node: str) -> list[object] | None:
    """Return an extractor's watermark stored in the destination at ``url`` (None: none yet)."""
    warehouse = connect_warehouse(url, connect_timeout=10, read_only=True)
    try:
        text = warehouse.read_state(*state_key(pipeline, node))
    except Exception:  # no state table yet: nothing was loaded
        return None
    finally:
        warehouse.close()
    return json.loads(text) if text else None


def has_new_rows(
    plan: PipelinePlan, document: RegistryDocument, environ: Mapping[str, str] | None = None
) -> bool:
    """Return True when an incremental extractor of ``plan`` has rows past its watermark."""
    loaders = plan.of_kind("loader")
    if not loaders or "data_source" not in loaders[0].config:
        return False
    destination = data_source_url(loaders[0].config["data_source"], document, environ)
    for node in plan.incremental:
        config = node.config
        watermark = stored_watermark(destination, plan.pipeline.name, node.id)
        key = tuple(config.get("key", ()))
        cursor = config["incremental_column"]
        query = Query(
            schema=config.get("schema"),
            table=config["table"],
            columns=(cursor,),
            after=(cursor, key, tuple(watermark)) if watermark else None,
        )
        reader = open_reader(data_source_url(config["data_source"], document, environ))
        try:
            if reader.exists_after(query):
                return True
        finally:
            reader.close()
    return False
