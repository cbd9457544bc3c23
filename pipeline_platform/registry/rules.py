"""The registry's cross-entry rules, in one home: duplicates, references, cycles, table keys.

Validation (refusing a file with every problem and its path), import (refusing a document whose
stages name topics it does not hold) and the Dagster translator (skipping records that a
hand-written SQL edit made inconsistent) all ask these functions; none restates a rule.
"""

from __future__ import annotations

import graphlib
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipeline_platform.registry.document import DEFAULT_DATA_SOURCE, Flow, TableConfig

P = TypeVar("P")
N = TypeVar("N", bound=Hashable)

STAGE_ROLES = (("inputs", "input"), ("outputs", "output"), ("errors", "error"))
"""A stage's topic lists: (document key, role name), in document order."""


# ---------------------------------------------------------------------------------- table keys


def table_asset_path(data_source: str, table: str) -> list[str]:
    """Return the asset key path of an ingested table: ``[<data_source>, <table>]``.

    This is the one place the ``<data_source>/<table>`` key is built; Dagster's ``AssetKey``,
    the sensors' tags, the monitoring pages and the CLI all derive from it.
    """
    return [data_source, table]


def table_asset_name(data_source: str, table: str) -> str:
    """Return the asset key of an ingested table as text: ``<data_source>/<table>``."""
    return "/".join(table_asset_path(data_source, table))


def table_identity(table: TableConfig) -> str:
    """Return what makes two tables the same table: ``<data_source>.<schema>.<table>``."""
    return ".".join(filter(None, (table.data_source, table.db_schema, table.name)))


# ---------------------------------------------------------------------------------- duplicates


def duplicates(items: Iterable[tuple[P, str]]) -> Iterator[tuple[P, str, P]]:
    """Yield every repeat of a name: ``(where, name, where it first appeared)``.

    Args:
        items: ``(where, name)`` pairs in document order; ``where`` is any position marker
            (a path such as ``topics[3].name``, an index, the record itself).
    """
    seen: dict[str, P] = {}
    for where, name in items:
        if name in seen:
            yield where, name, seen[name]
        else:
            seen[name] = where


# ---------------------------------------------------------------------------------- references


@dataclass(frozen=True)
class UnknownTopic:
    """A stage naming a topic the registry does not hold.

    Attributes:
        flow_index: Position of the flow in the flow list.
        stage_index: Position of the stage in its flow.
        key: The stage list naming it (``inputs``, ``outputs`` or ``errors``).
        position: Position of the name in that list.
        flow: The flow's name.
        stage: The stage's name.
        topic: The unknown topic name.
    """

    flow_index: int
    stage_index: int
    key: str
    position: int
    flow: str
    stage: str
    topic: str

    @property
    def path(self) -> str:
        """The entry path: ``flows[0].stages[1].inputs[2]``."""
        return f"flows[{self.flow_index}].stages[{self.stage_index}].{self.key}[{self.position}]"


def known_data_sources(names: Iterable[str]) -> set[str]:
    """Return the data sources a table may name: the registry's own plus the default one."""
    return {*names, DEFAULT_DATA_SOURCE}


def data_source_problem(table: TableConfig, known: set[str]) -> str | None:
    """Return why a table's data source is refused (``unknown data source 'x'``), or None."""
    if table.data_source in known:
        return None
    return f"unknown data source {table.data_source!r}"


def unknown_stage_topics(
    flows: Iterable[tuple[int, Flow]], topic_names: set[str]
) -> Iterator[UnknownTopic]:
    """Yield every stage reference to a topic not in ``topic_names``, in document order."""
    for i, flow in flows:
        for j, stage in enumerate(flow.stages):
            for key, _ in STAGE_ROLES:
                for k, topic in enumerate(getattr(stage, key)):
                    if topic not in topic_names:
                        yield UnknownTopic(i, j, key, k, flow.name, stage.name, topic)


def check_stage_references(flows: Sequence[Flow], topic_names: set[str]) -> None:
    """Refuse flows whose stages name topics outside ``topic_names``.

    Raises:
        ValueError: naming the first flow, stage and unknown topic.
    """
    for unknown in unknown_stage_topics(enumerate(flows), topic_names):
        raise ValueError(
            f"flow {unknown.flow!r} stage {unknown.stage!r} names unknown topic {unknown.topic!r}"
        )


def topic_edges(flows: Iterable[Flow]) -> dict[str, set[str]]:
    """Return topic → topics a stage reading it writes (outputs and errors)."""
    produces: dict[str, set[str]] = {}
    for flow in flows:
        for stage in flow.stages:
            for source in stage.inputs:
                produces.setdefault(source, set()).update((*stage.outputs, *stage.errors))
    return produces


# -------------------------------------------------------------------------------------- cycles


def _graph_cycle(children: Mapping[N, Iterable[N]]) -> list[N] | None:
    """One cycle of a graph as ``[a, b, ..., a]`` following ``children`` edges, or None."""
    # graphlib reads the mapping as node → predecessors, so its cycle runs against the edges.
    try:
        graphlib.TopologicalSorter(children).prepare()
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))
    return None


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one cycle of a directed graph as a node list, or None when acyclic.

    The cycle starts (and ends) at its smallest node, so the same graph always reports the
    same text.
    """
    cycle = _graph_cycle(edges)
    if cycle is None:
        return None
    ring = cycle[:-1]
    start = ring.index(min(ring))
    ring = ring[start:] + ring[:start]
    return [*ring, ring[0]]


def cycle_breaking_edges(upstream: Mapping[N, Sequence[N]]) -> dict[N, set[N]]:
    """Return the edges to drop so that a dependency graph has no cycle.

    Args:
        upstream: Node → the nodes it depends on (edges to unknown nodes are ignored).

    Returns:
        Node → the upstream nodes to drop from it; empty when the graph is acyclic. Each cycle
        loses the one edge that closes it.
    """
    graph = {node: [p for p in parents if p in upstream] for node, parents in upstream.items()}
    dropped: dict[N, set[N]] = {}
    while (cycle := _graph_cycle(graph)) is not None:
        # ``cycle`` follows upstream edges: cycle[-2] depends on cycle[-1] (== cycle[0]).
        node, parent = cycle[-2], cycle[-1]
        graph[node] = [p for p in graph[node] if p != parent]
        dropped.setdefault(node, set()).add(parent)
    return dropped
