"""Read-only questions over a registry snapshot: the answers of the old pipeline-monitor API.

Every function is pure: it takes a :class:`RegistryDocument` and returns plain, JSON-ready data
(dicts with camelCase keys, lists, strings, numbers, booleans, None) in a deterministic order, so
the same registry always gives byte-identical JSON. Unknown names raise :class:`LookupError`
with a one-line message such as ``unknown flow 'x'``.

Conventions shared by the answers:

- A *stage* is described by :func:`stage_info` (flow, name, order from 1, service, topics by role).
- A stage *produces* the topics it lists as ``outputs`` and ``errors``; it *consumes* its
  ``inputs``.
- A topic's storage table is named like its Dagster asset, ``<data_source>/<table>``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES, ModuleSpec
from pipeline_platform.registry.document import (
    ApiEndpoint,
    Flow,
    RegistryDocument,
    Stage,
    Topic,
)

PRIORITY_RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}
MODULE_KIND_RANK = {"extractor": 0, "transformer": 1, "loader": 2}

# Edge kinds of the topology graph.
CONSUMES = "consumes"
PRODUCES = "produces"
ERRORS = "errors"
PUBLISHES = "publishes"
STORES = "stores"


def _unique_sorted(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


def _stages(doc: RegistryDocument) -> Iterator[tuple[Flow, int, Stage]]:
    """Yield (flow, order from 1, stage) for every stage, flows by name, stages in order."""
    for flow in sorted(doc.flows, key=lambda f: f.name):
        for order, stage in enumerate(flow.stages, start=1):
            yield flow, order, stage


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


def storage_table(topic: Topic) -> str | None:
    """Return the asset-style name ``<data_source>/<table>`` of a topic's table, or None.

    Args:
        topic: The topic.

    Returns:
        ``warehouse/device_audio_raw`` for a topic ingested into that table; None when the
        topic is not ingested.
    """
    if topic.table is None:
        return None
    return f"{topic.table.data_source}/{topic.table.name}"


def endpoint_info(endpoint: ApiEndpoint) -> dict[str, Any]:
    """Describe an API endpoint as ``{"method", "path"}``."""
    return {"method": endpoint.method, "path": endpoint.path}


def endpoint_label(endpoint: ApiEndpoint) -> str:
    """Return ``"POST /audio/upload"``: the method and path of an endpoint."""
    return f"{endpoint.method} {endpoint.path}"


def stage_info(flow: Flow, order: int, stage: Stage) -> dict[str, Any]:
    """Describe one stage of a flow.

    Args:
        flow: The flow the stage belongs to.
        order: Position of the stage in its flow, from 1.
        stage: The stage.

    Returns:
        ``{"flow", "name", "order", "service", "description", "inputs", "outputs", "errors"}``
        with topic lists in declared order.
    """
    return {
        "flow": flow.name,
        "name": stage.name,
        "order": order,
        "service": stage.service,
        "description": stage.description,
        "inputs": list(stage.inputs),
        "outputs": list(stage.outputs),
        "errors": list(stage.errors),
    }


def _flow_topics(flow: Flow) -> set[str]:
    return {topic for stage in flow.stages for _, topic in stage.topics_by_role()}


def flow_summary(flow: Flow) -> dict[str, Any]:
    """Describe a flow without its stages.

    Returns:
        ``{"name", "description", "priority", "active", "stageCount", "topicCount"}``, where
        ``topicCount`` counts the distinct topics its stages read or write.
    """
    return {
        "name": flow.name,
        "description": flow.description,
        "priority": flow.priority,
        "active": flow.active,
        "stageCount": len(flow.stages),
        "topicCount": len(_flow_topics(flow)),
    }


def flows(doc: RegistryDocument) -> list[dict[str, Any]]:
    """List the flows, most urgent priority first, then by name.

    Args:
        doc: The registry.

    Returns:
        One :func:`flow_summary` per flow.
    """
    ordered = sorted(doc.flows, key=lambda f: (PRIORITY_RANK[f.priority], f.name))
    return [flow_summary(flow) for flow in ordered]


def flow(doc: RegistryDocument, name: str) -> dict[str, Any]:
    """Describe one flow with its stages in order.

    Args:
        doc: The registry.
        name: Flow name.

    Returns:
        ``{"flow": <flow summary>, "stages": [<stage info>...], "stageCount",
        "inputTopics", "outputTopics", "errorTopics"}``; the topic lists are sorted and
        without duplicates.

    Raises:
        LookupError: when no flow has that name.
    """
    found = _find_flow(doc, name)
    stages = [stage_info(found, i, s) for i, s in enumerate(found.stages, start=1)]
    return {
        "flow": flow_summary(found),
        "stages": stages,
        "stageCount": len(stages),
        "inputTopics": _unique_sorted(t for s in found.stages for t in s.inputs),
        "outputTopics": _unique_sorted(t for s in found.stages for t in s.outputs),
        "errorTopics": _unique_sorted(t for s in found.stages for t in s.errors),
    }


def stages(doc: RegistryDocument, flow: str | None = None) -> list[dict[str, Any]]:
    """List stages, by flow name then stage order, optionally of one flow only.

    Args:
        doc: The registry.
        flow: Only the stages of this flow, when given.

    Returns:
        One :func:`stage_info` per stage.

    Raises:
        LookupError: when ``flow`` names no flow.
    """
    if flow is not None:
        _find_flow(doc, flow)
    return [
        stage_info(f, order, stage)
        for f, order, stage in _stages(doc)
        if flow is None or f.name == flow
    ]


def topic_info(topic: Topic) -> dict[str, Any]:
    """Describe a topic's own settings.

    Returns:
        ``{"name", "category", "source", "datatype", "description", "partitions",
        "retentionDays", "active", "hasSchema"}``.
    """
    return {
        "name": topic.name,
        "category": topic.category,
        "source": topic.source,
        "datatype": topic.datatype,
        "description": topic.description,
        "partitions": topic.partitions,
        "retentionDays": topic.retention_days,
        "active": topic.active,
        "hasSchema": topic.json_schema is not None,
    }


def _writers_and_readers(
    doc: RegistryDocument,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Map each topic to the stages that produce it and the stages that consume it."""
    producers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    consumers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f, _, stage in _stages(doc):
        ref = {"flow": f.name, "stage": stage.name, "service": stage.service}
        for role, topic in stage.topics_by_role():
            target = consumers if role == "input" else producers
            if ref not in target[topic]:
                target[topic].append(ref)
    return producers, consumers


def topics(doc: RegistryDocument) -> list[dict[str, Any]]:
    """List the topics by name with their table and the services that write and read them.

    Args:
        doc: The registry.

    Returns:
        :func:`topic_info` plus ``"storageTable"`` (``<data_source>/<table>`` or None),
        ``"producers"`` and ``"consumers"`` (sorted service names).
    """
    producers, consumers = _writers_and_readers(doc)
    return [
        {
            **topic_info(topic),
            "storageTable": storage_table(topic),
            "producers": _unique_sorted(r["service"] for r in producers.get(topic.name, [])),
            "consumers": _unique_sorted(r["service"] for r in consumers.get(topic.name, [])),
        }
        for topic in sorted(doc.topics, key=lambda t: t.name)
    ]


def topology(doc: RegistryDocument) -> dict[str, Any]:
    """Return the graph API endpoint → topic → service → topic → table.

    Node ids are prefixed by type: ``api:POST /audio/upload``, ``topic:device.audio.raw``,
    ``service:silero-vad``, ``table:warehouse/device_audio_raw``. Edge kinds:
    ``publishes`` (endpoint → topic), ``consumes`` (topic → service), ``produces`` and
    ``errors`` (service → topic), ``stores`` (topic → table). Stage edges carry their flow and
    stage; the others carry None there.

    Args:
        doc: The registry.

    Returns:
        ``{"nodes": [{"id", "type", "name"}...], "edges": [{"source", "target", "kind",
        "flow", "stage"}...]}``, nodes by type (apiEndpoint, topic, service, table) then name,
        edges sorted.
    """
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str, str | None, str | None]] = set()

    def node(kind: str, prefix: str, name: str) -> str:
        node_id = f"{prefix}:{name}"
        nodes.setdefault(node_id, {"id": node_id, "type": kind, "name": name})
        return node_id

    for topic in doc.topics:
        topic_id = node("topic", "topic", topic.name)
        for endpoint in topic.api_endpoints:
            api_id = node("apiEndpoint", "api", endpoint_label(endpoint))
            edges.add((api_id, topic_id, PUBLISHES, None, None))
        table = storage_table(topic)
        if table is not None:
            edges.add((topic_id, node("table", "table", table), STORES, None, None))
    for f, _, stage in _stages(doc):
        service_id = node("service", "service", stage.service)
        for role, topic_name in stage.topics_by_role():
            topic_id = node("topic", "topic", topic_name)
            if role == "input":
                edges.add((topic_id, service_id, CONSUMES, f.name, stage.name))
            else:
                kind = PRODUCES if role == "output" else ERRORS
                edges.add((service_id, topic_id, kind, f.name, stage.name))

    type_rank = {"apiEndpoint": 0, "topic": 1, "service": 2, "table": 3}
    ordered_nodes = sorted(nodes.values(), key=lambda n: (type_rank[n["type"]], n["name"]))
    ordered_edges = sorted(edges, key=lambda e: (e[0], e[1], e[2], e[3] or "", e[4] or ""))
    return {
        "nodes": ordered_nodes,
        "edges": [
            {"source": s, "target": t, "kind": k, "flow": fl, "stage": st}
            for s, t, k, fl, st in ordered_edges
        ],
    }


def dependencies(doc: RegistryDocument) -> list[dict[str, Any]]:
    """List, for each service, the services it depends on and that depend on it.

    Service B depends on service A when a stage of B reads a topic that a stage of A writes
    (as output or error). A service never depends on itself.

    Args:
        doc: The registry.

    Returns:
        ``[{"service", "flows", "upstream", "downstream", "inputTopics", "outputTopics"}...]``
        sorted by service; names and topics sorted.
    """
    writers: dict[str, set[str]] = defaultdict(set)
    reads: dict[str, set[str]] = defaultdict(set)
    writes: dict[str, set[str]] = defaultdict(set)
    service_flows: dict[str, set[str]] = defaultdict(set)
    for f, _, stage in _stages(doc):
        service_flows[stage.service].add(f.name)
        reads[stage.service].update(stage.inputs)
        produced = (*stage.outputs, *stage.errors)
        writes[stage.service].update(produced)
        for topic in produced:
            writers[topic].add(stage.service)
    upstream: dict[str, set[str]] = defaultdict(set)
    downstream: dict[str, set[str]] = defaultdict(set)
    for service, inputs in reads.items():
        for topic in inputs:
            for writer in writers.get(topic, ()):
                if writer != service:
                    upstream[service].add(writer)
                    downstream[writer].add(service)
    return [
        {
            "service": service,
            "flows": sorted(service_flows[service]),
            "upstream": sorted(upstream[service]),
            "downstream": sorted(downstream[service]),
            "inputTopics": sorted(reads[service]),
            "outputTopics": sorted(writes[service]),
        }
        for service in sorted(service_flows)
    ]


def lineage(doc: RegistryDocument, topic: str) -> dict[str, Any]:
    """Return what produces a topic, what consumes it and where it is stored.

    Args:
        doc: The registry.
        topic: Topic name.

    Returns:
        ``{"topic": <topic info>, "producers": [{"flow", "stage", "service"}...],
        "consumers": [{"flow", "stage", "service"}...], "apiEndpoints": [{"method", "path"}...],
        "storageTable": "<data_source>/<table>" or None}``. Producers are the stages that list
        the topic as an output or an error topic; stages come by flow name then order.

    Raises:
        LookupError: when no topic has that name.
    """
    found = _find_topic(doc, topic)
    producers, consumers = _writers_and_readers(doc)
    return {
        "topic": topic_info(found),
        "producers": producers.get(topic, []),
        "consumers": consumers.get(topic, []),
        "apiEndpoints": [endpoint_info(e) for e in found.api_endpoints],
        "storageTable": storage_table(found),
    }


def service(doc: RegistryDocument, name: str) -> dict[str, Any]:
    """Describe the pipelines of a service: every stage it runs, with flows and topics.

    Args:
        doc: The registry.
        name: Service name.

    Returns:
        ``{"service", "flows", "stages": [<stage info>...], "inputTopics", "outputTopics",
        "errorTopics"}``; flows and topic lists sorted without duplicates.

    Raises:
        LookupError: when no stage runs that service.
    """
    runs = [(f, order, stage) for f, order, stage in _stages(doc) if stage.service == name]
    if not runs:
        raise LookupError(f"unknown service {name!r}")
    return {
        "service": name,
        "flows": _unique_sorted(f.name for f, _, _ in runs),
        "stages": [stage_info(f, order, stage) for f, order, stage in runs],
        "inputTopics": _unique_sorted(t for _, _, s in runs for t in s.inputs),
        "outputTopics": _unique_sorted(t for _, _, s in runs for t in s.outputs),
        "errorTopics": _unique_sorted(t for _, _, s in runs for t in s.errors),
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
