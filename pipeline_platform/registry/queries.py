"""Read-only questions over a registry snapshot: the JSON of the old pipeline-monitor API (§10).

This module is the one serializer of the read answers: the HTTP API and the CLI ``--json`` both
print what these functions return. Every function is pure: it takes a :class:`RegistryDocument`
and returns plain, JSON-ready data (the snake_case keys of the old monitor, lists, strings,
numbers, booleans, None) in a deterministic order, so the same registry always gives
byte-identical JSON. Unknown names raise :class:`LookupError` with a one-line message such as
``unknown flow 'x'``.

Conventions shared by the answers:

- A stage *produces* the topics it lists as ``outputs`` and ``errors``; it *consumes* its
  ``inputs``.
- ``table_name`` / ``storageTable`` are bare table names; a topic ingested into another data
  source than ``warehouse`` also carries ``data_source``.
- Flows come most urgent priority first, then by name; stages by flow name then order; topics
  and services by name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES, ModuleSpec
from pipeline_platform.registry.document import (
    DEFAULT_DATA_SOURCE,
    Flow,
    RegistryDocument,
    Stage,
    Topic,
)
from pipeline_platform.registry.graph_view import pipeline_graph as pipeline_graph
from pipeline_platform.registry.graph_view import stages_in_order

PRIORITY_RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}
MODULE_KIND_RANK = {"extractor": 0, "transformer": 1, "loader": 2}

# Node types of the graph view (/api/kafka/pipeline/database).


def _unique_sorted(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


def _find_flow(doc: RegistryDocument, name: str) -> Flow:
    for flow in doc.flows:
        if flow.name == name:
            return flow
    raise LookupError(f"unknown flow {name!r}")


def _find_topic(doc: RegistryDocument, name: str) -> Topic:
    topic = doc.topic(name)
    if topic is None:
        raise LookupError(f"unknown topic {name!r}")
    return topic


def _table_keys(topic: Topic) -> dict[str, Any]:
    """``{"table_name": name or None}``, plus ``data_source`` when it is not the warehouse."""
    if topic.table is None:
        return {"table_name": None}
    keys: dict[str, Any] = {"table_name": topic.table.name}
    if topic.table.data_source != DEFAULT_DATA_SOURCE:
        keys["data_source"] = topic.table.data_source
    return keys


def _endpoints(topic: Topic) -> list[str]:
    return [endpoint.path for endpoint in topic.api_endpoints]


def _flow_topics(flow: Flow) -> set[str]:
    return {topic for stage in flow.stages for _, topic in stage.topics_by_role()}


def _flow_row(flow: Flow) -> dict[str, Any]:
    return {
        "flow_name": flow.name,
        "description": flow.description,
        "priority": flow.priority,
        "stage_count": len(flow.stages),
        "topic_count": len(_flow_topics(flow)),
        "active": flow.active,
    }


def _stage_row(flow: Flow, stage: Stage) -> dict[str, Any]:
    return {
        "flow_name": flow.name,
        "stage_name": stage.name,
        "service_name": stage.service,
        "input_topics": list(stage.inputs),
        "output_topics": list(stage.outputs),
        "error_topics": list(stage.errors),
    }


def _topic_row(topic: Topic) -> dict[str, Any]:
    return {
        "topic_name": topic.name,
        "category": topic.category,
        "source": topic.source,
        "datatype": topic.datatype,
        "description": topic.description,
        "retention_days": topic.retention_days,
        "partitions": topic.partitions,
        "primary_endpoints": _endpoints(topic),
        **_table_keys(topic),
    }


def flows(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /api/pipelines/flows``: the active flows, most urgent first, then by name.

    Returns:
        ``{"flows": [{"flow_name", "description", "priority", "stage_count", "topic_count",
        "active"}...]}``; ``topic_count`` counts the distinct topics the stages read or write.
    """
    ordered = sorted(doc.flows, key=lambda f: (PRIORITY_RANK[f.priority], f.name))
    return {"flows": [_flow_row(flow) for flow in ordered if flow.active]}


def flow(doc: RegistryDocument, name: str) -> dict[str, Any]:
    """``GET /api/pipelines/flows/{flow}``: one flow and its stages in order.

    Returns:
        ``{"flow": {"flow_name", "description", "priority", "stage_count"}, "stages":
        [{"stage_name", "service_name", "input_topics", "output_topics", "error_topics",
        "stage_order"}...]}``.

    Raises:
        LookupError: when no flow has that name.
    """
    found = _find_flow(doc, name)
    row = _flow_row(found)
    return {
        "flow": {key: row[key] for key in ("flow_name", "description", "priority", "stage_count")},
        "stages": [
            {
                "stage_name": stage.name,
                "service_name": stage.service,
                "input_topics": list(stage.inputs),
                "output_topics": list(stage.outputs),
                "error_topics": list(stage.errors),
                "stage_order": order,
            }
            for order, stage in enumerate(found.stages, start=1)
        ],
    }


def stages(doc: RegistryDocument, flow: str | None = None) -> dict[str, Any]:
    """``GET /api/pipelines/stages[?flow=F]``: stages by flow name then order.

    Returns:
        ``{"stages": [{"flow_name", "stage_name", "service_name", "input_topics",
        "output_topics", "error_topics"}...]}``.

    Raises:
        LookupError: when ``flow`` names no flow.
    """
    if flow is not None:
        _find_flow(doc, flow)
    return {
        "stages": [
            _stage_row(f, stage)
            for f, _, stage in stages_in_order(doc)
            if flow is None or f.name == flow
        ]
    }


def topics(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /api/pipelines/topics``: every topic by name.

    Returns:
        ``{"topics": [{"topic_name", "category", "source", "datatype", "description",
        "retention_days", "partitions", "primary_endpoints", "table_name"}...]}`` (plus
        ``data_source`` for a table outside the warehouse).
    """
    return {"topics": [_topic_row(t) for t in sorted(doc.topics, key=lambda t: t.name)]}


def ingested_topics(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /topics`` of the old consumer: ``{"topics": [names of topics with a table]}``."""
    return {"topics": sorted(t.name for t in doc.topics if t.table is not None)}


def _refs(doc: RegistryDocument) -> tuple[dict[str, list[dict[str, str]]], ...]:
    """Map each topic to the stages that produce it and to the stages that consume it."""
    producers: dict[str, list[dict[str, str]]] = defaultdict(list)
    consumers: dict[str, list[dict[str, str]]] = defaultdict(list)
    for f, _, stage in stages_in_order(doc):
        ref = {"flow": f.name, "stage": stage.name, "service": stage.service}
        for role, topic in stage.topics_by_role():
            target = consumers if role == "input" else producers
            if ref not in target[topic]:
                target[topic].append(ref)
    return producers, consumers


def _services_by_topic(refs: dict[str, list[dict[str, str]]]) -> dict[str, list[str]]:
    return {
        topic: _unique_sorted(ref["service"] for ref in found)
        for topic, found in sorted(refs.items())
    }


def topology(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /api/pipelines/topology`` (and ``/api/kafka/pipeline/topology``).

    Returns:
        ``{"flows", "stages", "topics"}`` as their own routes list them (``flows`` without the
        active filter), and ``topic_producers`` / ``topic_consumers``: topic → sorted services.
    """
    producers, consumers = _refs(doc)
    ordered = sorted(doc.flows, key=lambda f: (PRIORITY_RANK[f.priority], f.name))
    return {
        "flows": [_flow_row(f) for f in ordered],
        "stages": stages(doc)["stages"],
        "topics": topics(doc)["topics"],
        "topic_producers": _services_by_topic(producers),
        "topic_consumers": _services_by_topic(consumers),
    }


def dependencies(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /api/pipelines/dependencies``: service → service through the topics between them.

    Service B depends on service A when a stage of B reads a topic a stage of A writes (output
    or error); a service never depends on itself.

    Returns:
        ``{"dependencies": [{"source_service", "target_service", "via_topics"}...]}`` sorted by
        source then target, topics sorted.
    """
    producers, consumers = _refs(doc)
    via: dict[tuple[str, str], set[str]] = defaultdict(set)
    for topic, writers in producers.items():
        for writer in writers:
            for reader in consumers.get(topic, ()):
                if writer["service"] != reader["service"]:
                    via[(writer["service"], reader["service"])].add(topic)
    return {
        "dependencies": [
            {"source_service": source, "target_service": target, "via_topics": sorted(names)}
            for (source, target), names in sorted(via.items())
        ]
    }


def lineage(doc: RegistryDocument, topic: str) -> dict[str, Any]:
    """``GET /api/pipelines/topics/{topic}/lineage``: what produces, consumes and stores a topic.

    Returns:
        ``{"topic": {"topic_name", "description", "retention_days", "primary_endpoints",
        "table_name"}, "producers": [{"flow", "stage", "service"}...], "consumers": [...],
        "apiEndpoints": [paths], "storageTable": bare table name or None}``.

    Raises:
        LookupError: when no topic has that name.
    """
    found = _find_topic(doc, topic)
    producers, consumers = _refs(doc)
    return {
        "topic": {
            "topic_name": found.name,
            "description": found.description,
            "retention_days": found.retention_days,
            "primary_endpoints": _endpoints(found),
            **_table_keys(found),
        },
        "producers": producers.get(topic, []),
        "consumers": consumers.get(topic, []),
        "apiEndpoints": _endpoints(found),
        "storageTable": found.table.name if found.table is not None else None,
    }


def service(doc: RegistryDocument, name: str) -> dict[str, Any]:
    """``GET /api/pipelines/services/{name}``: every stage a service runs.

    Returns:
        ``{"service_name", "stages": [{"flow_name", "stage_name", "input_topics",
        "output_topics"}...]}``.

    Raises:
        LookupError: when no stage runs that service.
    """
    runs = [(f, stage) for f, _, stage in stages_in_order(doc) if stage.service == name]
    if not runs:
        raise LookupError(f"unknown service {name!r}")
    return {
        "service_name": name,
        "stages": [
            {
                "flow_name": f.name,
                "stage_name": stage.name,
                "input_topics": list(stage.inputs),
                "output_topics": list(stage.outputs),
            }
            for f, stage in runs
        ],
    }


def validation_statistics(doc: RegistryDocument) -> dict[str, int]:
    """Counts of ``GET /validate-config``: topics, tables, mappings, flows, stages."""
    tables = [t.table for t in doc.topics if t.table is not None]
    return {
        "topics": len(doc.topics),
        "tables": len(tables),
        "mappings": sum(len(table.mappings) for table in tables),
        "flows": len(doc.flows),
        "stages": sum(len(f.stages) for f in doc.flows),
    }


def module_usage(document: RegistryDocument | None) -> dict[str, int]:
    """Count, per module name, the pipelines whose graph uses it (0 without a document)."""
    counts: dict[str, int] = {}
    for pipeline in document.pipelines if document is not None else ():
        for name in {node.module for node in pipeline.graph.nodes}:
            counts[name] = counts.get(name, 0) + 1
    return counts


def module_info(module: ModuleSpec, usage: int = 0) -> dict[str, Any]:
    """Describe a catalog module with the fields of the old pipeline builder.

    Keys: ``name``, ``displayName``, ``kind``, ``category``, ``description``, ``version``,
    ``icon``, ``documentationUrl``, ``tags``, ``requiredConnections``, ``configSchema``,
    ``inputSchema``, ``outputSchema``, ``inputs``, ``usageCount``.
    """
    return {
        "name": module.name,
        "displayName": module.display_name,
        "kind": module.kind,
        "category": module.category,
        "description": module.description,
        "version": module.version,
        "icon": module.icon,
        "documentationUrl": module.documentation_url,
        "tags": list(module.tags),
        "requiredConnections": list(module.connections),
        "configSchema": module.config_schema,
        "inputSchema": module.input_schema,
        "outputSchema": module.output_schema,
        "inputs": module.inputs,
        "usageCount": usage,
    }


def modules(
    catalog: Iterable[ModuleSpec] = BUILTIN_MODULES, document: RegistryDocument | None = None
) -> list[dict[str, Any]]:
    """List the modules of the catalog: extractors, transformers, then loaders, by name.

    Args:
        catalog: The modules to list; the built-in catalog by default.
        document: The registry, to count how many pipelines use each module.

    Returns:
        One :func:`module_info` per module.
    """
    usage = module_usage(document)
    ordered = sorted(catalog, key=lambda m: (MODULE_KIND_RANK.get(m.kind, 99), m.name))
    return [module_info(m, usage.get(m.name, 0)) for m in ordered]
