"""The registry as a graph view laid out left to right (``GET /api/kafka/pipeline/database``).

A pure function of a :class:`RegistryDocument`, like the other read answers of
:mod:`pipeline_platform.registry.queries` (which re-exports :func:`pipeline_graph`).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline_platform.registry.document import (
    DEFAULT_DATA_SOURCE,
    Flow,
    RegistryDocument,
    Stage,
    Topic,
)

EXTERNAL = "external"
KAFKA = "kafka"
PROCESSOR = "processor"
DATABASE = "database"
_TYPE_RANK = {EXTERNAL: 0, KAFKA: 1, PROCESSOR: 2, DATABASE: 3}
LAYER_WIDTH = 300
ROW_HEIGHT = 120


def stages_in_order(doc: RegistryDocument) -> Iterator[tuple[Flow, int, Stage]]:
    """Yield (flow, order from 1, stage) for every stage, flows by name, stages in order."""
    for flow in sorted(doc.flows, key=lambda f: f.name):
        for order, stage in enumerate(flow.stages, start=1):
            yield flow, order, stage


def _table_node_id(topic: Topic) -> str:
    assert topic.table is not None
    table = topic.table
    if table.data_source == DEFAULT_DATA_SOURCE:
        return f"db-{table.name}"
    return f"db-{table.data_source}.{table.name}"


def _layers(node_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of every node (Kahn's order); nodes on a cycle keep their layer."""
    layer = dict.fromkeys(node_ids, 0)
    targets: dict[str, list[str]] = defaultdict(list)
    incoming: dict[str, int] = dict.fromkeys(layer, 0)
    for source, target in edges:
        targets[source].append(target)
        incoming[target] += 1
    ready = deque(sorted(node for node, count in incoming.items() if count == 0))
    while ready:
        node = ready.popleft()
        for target in targets[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return layer


def pipeline_graph(doc: RegistryDocument) -> dict[str, Any]:
    """``GET /api/kafka/pipeline/database``: the graph view, laid out left to right.

    Nodes: ``api-<path>`` (type ``external``), ``<topic>`` (``kafka``), ``service-<name>``
    (``processor``), ``db-<table>`` (``database``; ``db-<data_source>.<table>`` outside the
    warehouse). Edges ``e-<source>-<target>``: endpoint → topic, topic → service (input),
    service → topic (output, error), topic → table. Each node sits in the layer of its longest
    path from a source node, at ``x = layer * 300``, rows ``y = 120 * i`` in (type, id) order,
    so no two nodes share a position.

    Returns:
        ``{"nodes": [{"id", "type", "position": {"x", "y"}, "data": {"label", "status",
        "description"}}...], "edges": [{"id", "source", "target", "animated": true}...]}``.
    """
    nodes: dict[str, tuple[str, dict[str, Any]]] = {}
    edges: set[tuple[str, str]] = set()

    def node(node_id: str, kind: str, label: str, status: str, description: str) -> str:
        if node_id not in nodes:
            data = {"label": label, "status": status, "description": description}
            nodes[node_id] = (kind, data)
        return node_id

    def topic_node(topic: Topic) -> str:
        status = "active" if topic.active else "inactive"
        return node(topic.name, KAFKA, topic.name, status, topic.description)

    for topic in sorted(doc.topics, key=lambda t: t.name):
        topic_id = topic_node(topic)
        for endpoint in topic.api_endpoints:
            label = f"{endpoint.method} {endpoint.path}"
            api_id = node(f"api-{endpoint.path}", EXTERNAL, endpoint.path, "active", label)
            edges.add((api_id, topic_id))
        if topic.table is not None:
            table = topic.table
            where = f"{table.data_source}.{table.db_schema or 'public'}.{table.name}"
            edges.add(
                (topic_id, node(_table_node_id(topic), DATABASE, table.name, "active", where))
            )
    for f, _, stage in stages_in_order(doc):
        status = "active" if f.active else "inactive"
        service_id = node(
            f"service-{stage.service}", PROCESSOR, stage.service, status, f"{f.name}/{stage.name}"
        )
        for role, name in stage.topics_by_role():
            known = doc.topic(name)
            topic_id = topic_node(known) if known is not None else node(name, KAFKA, name, "", "")
            edges.add((topic_id, service_id) if role == "input" else (service_id, topic_id))

    layer = _layers(nodes, edges)
    rows: dict[int, int] = defaultdict(int)
    out_nodes: list[dict[str, Any]] = []
    for node_id in sorted(nodes, key=lambda n: (layer[n], _TYPE_RANK[nodes[n][0]], n)):
        kind, data = nodes[node_id]
        column = layer[node_id]
        position = {"x": column * LAYER_WIDTH, "y": rows[column] * ROW_HEIGHT}
        rows[column] += 1
        out_nodes.append({"id": node_id, "type": kind, "position": position, "data": data})
    return {
        "nodes": out_nodes,
        "edges": [
            {"id": f"e-{source}-{target}", "source": source, "target": target, "animated": True}
            for source, target in sorted(edges)
        ],
    }
