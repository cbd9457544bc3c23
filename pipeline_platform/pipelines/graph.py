"""Pipeline graphs: preset resolution, validation with entry paths, schemas and the run plan.

:func:`check_pipeline` reports every problem of one pipeline at once as ``(path, reason)``
pairs (the registry's validation wraps them); :func:`build_plan` turns a valid pipeline into a
:class:`PipelinePlan`, the topologically ordered nodes the runner, the preview and the factory use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline_platform.pipelines.catalog import MODULES_BY_NAME, ModuleSpec
from pipeline_platform.pipelines.catalog.presets import BUILTIN_PRESETS
from pipeline_platform.pipelines.conditions import condition_columns
from pipeline_platform.pipelines.expressions import ExpressionError, parse_expression
from pipeline_platform.registry.document import Pipeline, PipelineNode, Preset
from pipeline_platform.registry.rules import find_cycle

Issue = tuple[str, str]  # (path, reason)


def presets_by_name(presets: tuple[Preset, ...] = ()) -> dict[str, Preset]:
    """Return the shipped presets overridden by the registry's presets of the same name."""
    return {p.name: p for p in (*BUILTIN_PRESETS, *presets)}


def resolve_config(node: PipelineNode, presets: Mapping[str, Preset]) -> dict[str, Any]:
    """Return a node's effective config: its preset's config with the node's keys on top."""
    preset = presets.get(node.preset) if node.preset else None
    return {**(preset.config if preset else {}), **node.config}


@dataclass(frozen=True)
class PlanNode:
    """One node of a run plan.

    Attributes:
        id: Node id.
        module: The catalog module.
        config: Effective config (preset merged).
        parents: Upstream node ids; for a join, (left, right).
        children: Downstream node ids.
    """

    id: str
    module: ModuleSpec
    config: dict[str, Any]
    parents: tuple[str, ...]
    children: tuple[str, ...]


@dataclass(frozen=True)
class PipelinePlan:
    """A valid pipeline as the runner executes it: nodes in topological order."""

    pipeline: Pipeline
    nodes: tuple[PlanNode, ...]

    def node(self, node_id: str) -> PlanNode:
        """Return the node called ``node_id``."""
        return next(n for n in self.nodes if n.id == node_id)

    def of_kind(self, kind: str) -> tuple[PlanNode, ...]:
        """Return the nodes of one module kind, in plan order."""
        return tuple(n for n in self.nodes if n.module.kind == kind)

    @property
    def incremental(self) -> tuple[PlanNode, ...]:
        """The extractors that read past a watermark."""
        return tuple(n for n in self.of_kind("extractor") if n.config.get("incremental_column"))


def _edges(pipeline: Pipeline) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    children: dict[str, list[str]] = defaultdict(list)
    parents: dict[str, list[str]] = defaultdict(list)
    for left, right in pipeline.graph.edges:
        if right not in children[left]:
            children[left].append(right)
            parents[right].append(left)
    return children, parents


def build_plan(
    pipeline: Pipeline,
    presets: Mapping[str, Preset] | None = None,
    modules: Mapping[str, ModuleSpec] = MODULES_BY_NAME,
) -> PipelinePlan:
    """Return the run plan of a validated pipeline (nodes in topological order).

    Raises:
        ValueError: when the graph has a cycle or names an unknown module.
    """
    presets = presets_by_name() if presets is None else presets
    children, parents = _edges(pipeline)
    by_id = {n.id: n for n in pipeline.graph.nodes}
    pending = {n.id: len(parents[n.id]) for n in pipeline.graph.nodes}
    ready = [n.id for n in pipeline.graph.nodes if not pending[n.id]]
    order: list[PlanNode] = []
    while ready:
        node_id = ready.pop(0)
        node = by_id[node_id]
        config = resolve_config(node, presets)
        ups = parents[node_id]
        if node.module == "join" and config.get("right") in ups:
            ups = [p for p in ups if p != config["right"]] + [config["right"]]
        order.append(
            PlanNode(node_id, modules[node.module], config, tuple(ups), tuple(children[node_id]))
        )
        for child in children[node_id]:
            pending[child] -= 1
            if not pending[child]:
                ready.append(child)
    if len(order) != len(by_id):
        raise ValueError(f"pipeline {pipeline.name!r} has a cycle")
    return PipelinePlan(pipeline, tuple(order))


def required_columns(module: str, config: Mapping[str, Any]) -> list[str]:
    """Return the input columns a module's config names (what its upstream must produce)."""
    if module == "filter_rows":
        return list(dict.fromkeys(condition_columns(config)))
    if module in ("select_columns", "mask_columns"):
        return list(config.get("columns", ()))
    if module == "rename_columns":
        return list(config.get("mapping", {}))
    if module == "cast_columns":
        return list(config.get("types", {}))
    if module == "fill_nulls":
        return list(config.get("values", {}))
    if module == "derive_column":
        return sorted(parse_expression(config["expression"]).columns)
    if module == "deduplicate":
        return list(config.get("key", ()))
    if module == "aggregate":
        return list(dict.fromkeys([*config["group_by"], *config["aggregations"]]))
    if module == "sort_rows":
        return list(config.get("by", ()))
    if module == "sql_table_loader" and config.get("mode") == "upsert":
        return list(config.get("key", ()))
    return []


def output_columns(
    module: str, config: Mapping[str, Any], inputs: list[list[str] | None]
) -> list[str] | None:
    """Return the columns a node produces where known (None when unknown)."""
    first = inputs[0] if inputs else None
    if module in ("sql_table_extractor", "csv_extractor", "parquet_extractor"):
        return list(config["columns"]) if config.get("columns") else None
    if module == "select_columns":
        rename = config.get("rename") or {}
        return [rename.get(c, c) for c in config["columns"]]
    if module == "aggregate":
        extra = [config["count_as"]] if config.get("count_as") else []
        return [*config["group_by"], *config["aggregations"], *extra]
    if first is None:
        return None
    if module == "rename_columns":
        return [config["mapping"].get(c, c) for c in first]
    if module == "derive_column":
        return [*first, *([config["column"]] if config["column"] not in first else [])]
    if module == "join":
        right = inputs[1] if len(inputs) > 1 else None
        if right is None:
            return None
        on = set(config["on"])
        return [*first, *(c if c not in first else f"{c}_right" for c in right if c not in on)]
    return first


def _valid_cron(schedule: str) -> bool:
    from croniter import croniter  # loads only for a pipeline with a schedule

    return bool(croniter.is_valid(schedule))


def _check_config(
    npath: str, module: ModuleSpec, config: dict[str, Any], sources: Mapping[str, str | None]
) -> Iterator[Issue]:
    import jsonschema  # loads only when a pipeline's module config is checked

    validator = jsonschema.validators.validator_for(module.config_schema)(module.config_schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    for error in errors:
        yield _path(npath, "config", *error.path), error.message
    if errors:
        return
    source = config.get("data_source")
    if isinstance(source, str):
        if source not in sources:
            yield f"{npath}.config.data_source", f"unknown data source {source!r}"
        elif sources[source] is not None and sources[source] not in module.connections:
            yield (
                f"{npath}.config.data_source",
                f"data source {source!r} is {sources[source]}; {module.name} needs one of "
                + ", ".join(module.connections),
            )
    if module.name == "derive_column":
        try:
            parse_expression(config["expression"])
        except ExpressionError as error:
            yield f"{npath}.config.expression", str(error)
    if module.name == "sql_table_extractor" and config.get("incremental_column"):
        if not config.get("key"):
            yield f"{npath}.config.key", "an incremental extractor needs a key (ties on the cursor)"
        if config.get("columns"):
            for name in (config["incremental_column"], *config.get("key", ())):
                if name not in config["columns"]:
                    yield f"{npath}.config.columns", f"must include {name!r} (incremental read)"


def _path(*parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_pipeline(
    base: str,
    pipeline: Pipeline,
    sources: Mapping[str, str | None],
    presets: Mapping[str, Preset],
    modules: Mapping[str, ModuleSpec] = MODULES_BY_NAME,
) -> list[Issue]:
    """Return every problem of one pipeline, each with its entry path.

    Args:
        base: Path of the pipeline entry (``pipelines[3]``).
        pipeline: The pipeline.
        sources: Data source name → kind (None when the kind is not known, e.g. default warehouse).
        presets: Presets by name (shipped and registry).
        modules: The module catalog.

    Returns:
        ``(path, reason)`` pairs; empty when the pipeline is valid.
    """
    out: list[Issue] = []
    if pipeline.schedule is not None and not _valid_cron(pipeline.schedule):
        out.append((f"{base}.schedule", f"not a valid cron string: {pipeline.schedule!r}"))
    if pipeline.mode == "batch" and pipeline.schedule is None:
        out.append((f"{base}.schedule", "a batch pipeline needs a cron schedule"))
    try:
        ZoneInfo(pipeline.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.append((f"{base}.timezone", f"unknown time zone {pipeline.timezone!r}"))
    nodes = pipeline.graph.nodes
    seen: dict[str, str] = {}
    for j, n in enumerate(nodes):
        where = f"{base}.graph.nodes[{j}].id"
        if n.id in seen:
            out.append((where, f"duplicate node {n.id!r} (first at {seen[n.id]})"))
        seen.setdefault(n.id, where)
    index = {n.id: j for j, n in enumerate(nodes)}
    specs: dict[str, ModuleSpec] = {}
    configs: dict[str, dict[str, Any]] = {}
    for j, node in enumerate(nodes):
        npath = f"{base}.graph.nodes[{j}]"
        module = modules.get(node.module)
        if module is None:
            out.append((f"{npath}.module", f"unknown module {node.module!r}"))
            continue
        if node.preset is not None:
            preset = presets.get(node.preset)
            if preset is None:
                out.append((f"{npath}.preset", f"unknown preset {node.preset!r}"))
                continue
            if preset.module != node.module:
                out.append((f"{npath}.preset", f"preset {node.preset!r} is for {preset.module}"))
                continue
        config = resolve_config(node, presets)
        issues = list(_check_config(npath, module, config, sources))
        out.extend(issues)
        specs[node.id] = module
        if not issues:
            configs[node.id] = config
    children, parents = _edges(pipeline)
    for j, (left, right) in enumerate(pipeline.graph.edges):
        for k, end in enumerate((left, right)):
            if end not in index:
                out.append((f"{base}.graph.edges[{j}][{k}]", f"unknown node {end!r}"))
    cycle = find_cycle({k: set(v) for k, v in children.items()})
    if cycle:
        out.append((f"{base}.graph.edges", "cycle: " + " -> ".join(cycle)))
    for j, node in enumerate(nodes):
        npath = f"{base}.graph.nodes[{j}]"
        module = specs.get(node.id)
        kind = module.kind if module else None
        ups = parents[node.id]
        if not children[node.id] and not ups:
            out.append((npath, f"node {node.id!r} is not connected to the graph"))
        elif kind is None:
            continue
        elif not ups and kind != "extractor":
            out.append((npath, f"the graph starts at {node.id!r}, a {kind}, not an extractor"))
        elif not children[node.id] and kind != "loader":
            out.append((npath, f"the graph ends at {node.id!r}, a {kind}, not a loader"))
        elif kind == "extractor" and ups:
            out.append((npath, f"extractor {node.id!r} has an upstream node"))
        elif kind == "loader" and children[node.id]:
            out.append((npath, f"loader {node.id!r} has a downstream node"))
        elif module is not None and kind != "extractor" and len(ups) != module.inputs:
            out.append(
                (npath, f"{node.module} takes {module.inputs} input(s), {node.id!r} has {len(ups)}")
            )
        elif node.module == "join" and node.id in configs:
            right = configs[node.id]["right"]
            if right not in ups:
                out.append((f"{npath}.config.right", f"{right!r} is not an input of {node.id!r}"))
    if out:
        return out
    out.extend(_check_schemas(base, pipeline, configs, index))
    return out


def _check_schemas(
    base: str, pipeline: Pipeline, configs: Mapping[str, dict[str, Any]], index: Mapping[str, int]
) -> list[Issue]:
    """Check that each node's required input columns exist where the upstream schema is known."""
    plan = build_plan(pipeline, presets={}, modules=MODULES_BY_NAME)
    columns: dict[str, list[str] | None] = {}
    out: list[Issue] = []
    incremental = any(c.get("incremental_column") for c in configs.values())
    for plan_node in plan.nodes:
        config = configs[plan_node.id]
        npath = f"{base}.graph.nodes[{index[plan_node.id]}]"
        inputs = [columns[p] for p in plan_node.parents]
        module = plan_node.module.name
        needed = required_columns(module, config)
        sides = inputs if module != "join" else inputs[:2]
        for side, available in enumerate(sides):
            if available is None:
                continue
            wanted = config["on"] if module == "join" else needed
            for name in wanted:
                if name not in available:
                    upstream = plan_node.parents[side]
                    out.append(
                        (f"{npath}.config", f"column {name!r} is not produced by {upstream!r}")
                    )
        columns[plan_node.id] = output_columns(module, config, inputs)
        if module == "sql_table_loader" and config.get("mode") == "replace" and incremental:
            out.append((f"{npath}.config.mode", "replace cannot follow an incremental read"))
    loaders = plan.of_kind("loader")
    if incremental and (len(loaders) != 1 or loaders[0].module.name != "sql_table_loader"):
        reason = "an incremental read needs exactly one sql_table_loader (it keeps the watermark)"
        out.append((f"{base}.graph", reason))
    if pipeline.mode == "realtime" and not any(
        configs[n.id].get("incremental_column") for n in plan.of_kind("extractor")
    ):
        out.append(
            (f"{base}.mode", "a realtime pipeline needs an extractor with incremental_column")
        )
    return out
