"""Run a pipeline plan: extractors stream chunks through the steps into the loaders.

Execution is push-based and chunked: each extractor chunk is pushed through its downstream
steps at once (streaming steps pass it on, blocking steps hold it); after the last chunk, steps
are finished in topological order. Loaders make their writes visible only at the end, all
together: the SQL loader's destination transaction holds the rows, the upsert merge or table
swap and the new watermark, so a run that dies leaves everything as it was.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline_platform.pipelines.conditions import condition_sql
from pipeline_platform.pipelines.connections import data_source_url
from pipeline_platform.pipelines.extractors import Extract, Pushdown
from pipeline_platform.pipelines.graph import PipelinePlan, PlanNode
from pipeline_platform.pipelines.loaders import FileLoad, Loader, SqlTableLoad
from pipeline_platform.pipelines.prefetch import prefetch
from pipeline_platform.pipelines.sources import Chunk, head, to_pandas
from pipeline_platform.pipelines.streaming import stream_copy, streamable
from pipeline_platform.pipelines.transforms import PassThrough, Step, build_step
from pipeline_platform.pipelines.watermark import state_key
from pipeline_platform.registry.document import RegistryDocument

logger = logging.getLogger(__name__)

Log = Callable[[str], None]


@dataclass
class NodeStats:
    """Rows in and out of one node, rows it rejected, and seconds spent in it."""

    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    seconds: float = 0.0
    pushed_down: bool = False


@dataclass
class RunResult:
    """What a pipeline run did.

    Attributes:
        pipeline: Pipeline name.
        nodes: Stats per node id.
        seconds: Wall time of the run.
        watermarks: Extractor id → (before, after) positions (incremental extractors).
        outputs: Loader id → rows written.
        samples: Node id → first rows produced (preview only).
    """

    pipeline: str
    nodes: dict[str, NodeStats] = field(default_factory=dict)
    seconds: float = 0.0
    watermarks: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    samples: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        """Rows produced by the extractors."""
        return sum(s.rows_out for n, s in self.nodes.items() if n in self.extractors)

    extractors: tuple[str, ...] = ()

    @property
    def rows_written(self) -> int:
        """Rows written by the loaders."""
        return sum(self.outputs.values())

    @property
    def rows_rejected(self) -> int:
        """Rows refused by any node (casts with ``on_error: reject``)."""
        return sum(s.rejected for s in self.nodes.values())

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


def plan_pushdown(plan: PipelinePlan, dialects: Mapping[str, str]) -> dict[str, Pushdown]:
    """Find the filter / select work that SQL table extractors can do exactly in their query.

    Args:
        plan: The run plan.
        dialects: Extractor id → SQL dialect of its data source.

    Returns:
        Extractor id → what to push down (only extractors with something to push).
    """
    pushed: dict[str, Pushdown] = {}
    for node in plan.of_kind("extractor"):
        if node.module.name != "sql_table_extractor" or len(node.children) != 1:
            continue
        child = plan.node(node.children[0])
        push = Pushdown()
        if child.module.name == "filter_rows" and len(child.parents) == 1:
            rendered = condition_sql(child.config, str, repr, dialects.get(node.id, ""))
            if rendered is not None:
                push.where, push.filter_node = child.config, child.id
                if len(child.children) == 1:
                    child = plan.node(child.children[0])
        if child.module.name == "select_columns" and len(child.parents) == 1:
            push.columns = tuple(child.config["columns"])
        if push.where is not None or push.columns is not None:
            pushed[node.id] = push
    return pushed


class _Executor:
    def __init__(self, plan: PipelinePlan, result: RunResult, sample: int | None) -> None:
        self.plan = plan
        self.result = result
        self.sample = sample
        self.steps: dict[str, Step] = {}

    def emit(self, node: PlanNode, frame: Chunk | None) -> None:
        if frame is None:
            return
        stats = self.result.nodes[node.id]
        stats.rows_out += len(frame)
        if self.sample is not None:
            held = self.result.samples.get(node.id)
            if held is None or len(held) < self.sample:
                sample = to_pandas(head(frame, self.sample))
                joined = sample if held is None else pd.concat([held, sample])
                self.result.samples[node.id] = joined.iloc[: self.sample]
        for child_id in node.children:
            child = self.plan.node(child_id)
            self.push(child, frame, child.parents.index(node.id))

    def push(self, node: PlanNode, frame: Chunk, port: int) -> None:
        stats = self.result.nodes[node.id]
        stats.rows_in += len(frame)
        started = time.perf_counter()
        step = self.steps[node.id]
        out = step.process(frame if step.arrow_ok else to_pandas(frame), port)
        stats.seconds += time.perf_counter() - started
        self.emit(node, out)

    def finish(self) -> None:
        for node in self.plan.nodes:
            if node.module.kind == "extractor":
                continue
            step = self.steps[node.id]
            started = time.perf_counter()
            out = step.finish()
            self.result.nodes[node.id].seconds += time.perf_counter() - started
            self.result.nodes[node.id].rejected = int(step.rejected)
            self.emit(node, out)


def _dialect(url: str) -> str:
    return "postgresql" if url.split(":", 1)[0].startswith("postgres") else "sqlite"


def execute(
    plan: PipelinePlan,
    document: RegistryDocument,
    *,
    run_id: str,
    environ: Mapping[str, str] | None = None,
    log: Log | None = None,
    preview_rows: int | None = None,
    preview_limit: int = 10_000,
) -> RunResult:
    """Run (or preview) a pipeline.

    Args:
        plan: The run plan (see ``graph.build_plan``).
        document: The registry (data sources).
        run_id: The run's id (temporary file names).
        environ: Environment to read data source URLs from; the process environment by default.
        log: Where progress lines go (the Dagster log in a run); never given a URL.
        preview_rows: Preview: keep this many rows per node, read at most ``preview_limit``
            rows per extractor and write nothing.
        preview_limit: Most rows per extractor in a preview.

    Returns:
        Per-node stats, watermarks, rows written (and samples in a preview).
    """
    say = log or logger.info
    started = time.perf_counter()
    pipeline = plan.pipeline.name
    preview = preview_rows is not None
    result = RunResult(pipeline, extractors=tuple(n.id for n in plan.of_kind("extractor")))
    urls = {
        n.id: data_source_url(n.config["data_source"], document, environ)
        for n in plan.nodes
        if "data_source" in n.config
    }
    pushdowns = plan_pushdown(plan, {k: _dialect(v) for k, v in urls.items()})
    pushed_filters = {p.filter_node for p in pushdowns.values() if p.filter_node}
    executor = _Executor(plan, result, preview_rows)
    loaders: dict[str, Loader] = {}
    try:
        for node in plan.nodes:
            result.nodes[node.id] = NodeStats(pushed_down=node.id in pushed_filters)
            if node.module.kind == "transformer":
                step = (
                    PassThrough()
                    if node.id in pushed_filters
                    else build_step(node.module.name, node.config)
                )
                executor.steps[node.id] = step
            elif node.module.kind == "loader":
                if preview:
                    executor.steps[node.id] = PassThrough()
                    continue
                if node.module.name == "sql_table_loader":
                    loader: Loader = SqlTableLoad(node.config, urls[node.id], run_id)
                else:
                    fmt = "csv" if node.module.name == "csv_loader" else "parquet"
                    loader = FileLoad(node.config, fmt, run_id)
                loaders[node.id] = executor.steps[node.id] = loader
        state_home = next(iter(loaders.values()), None)
        extracts: dict[str, Extract] = {}
        stored: dict[str, str | None] = {}
        for node in plan.of_kind("extractor"):
            before = None
            if node.config.get("incremental_column") and state_home is not None:
                text = state_home.read_state(state_key(pipeline, node.id))
                stored[node.id] = text
                before = json.loads(text) if text else None
            extracts[node.id] = Extract(
                node.module.name,
                node.config,
                url=urls.get(node.id),
                pushdown=pushdowns.get(node.id, Pushdown()),
                watermark=before,
                limit=preview_limit if preview else None,
            )
            if node.config.get("incremental_column"):
                result.watermarks[node.id] = (before, before)
        fast = None if preview else streamable(plan, pushed_filters)
        if fast is not None and isinstance(loaders.get(fast[1].id), SqlTableLoad):
            source, sink = fast
            loader = loaders[sink.id]
            say(f"{source.id}: streaming into {sink.id} (COPY to COPY, nothing to transform)")
            started_copy = time.perf_counter()
            copied = stream_copy(extracts[source.id], loader, urls)  # type: ignore[arg-type]
            if copied is not None:
                for node in plan.nodes:
                    stats = result.nodes[node.id]
                    stats.rows_in = 0 if node.id == source.id else copied
                    stats.rows_out = 0 if node.id == sink.id else copied
                result.nodes[source.id].seconds = time.perf_counter() - started_copy
                plan_extractors: tuple[PlanNode, ...] = ()
            else:
                plan_extractors = plan.of_kind("extractor")
        else:
            plan_extractors = plan.of_kind("extractor")
        for node in plan_extractors:
            say(f"{node.id}: reading ({node.module.name})")
            stats = result.nodes[node.id]
            chunk_started = time.perf_counter()
            for frame in prefetch(extracts[node.id].chunks()):
                stats.seconds += time.perf_counter() - chunk_started
                executor.emit(node, frame)
                say(f"{node.id}: {stats.rows_out} rows read")
                chunk_started = time.perf_counter()
        if plan_extractors:
            executor.finish()
        state: dict[tuple[str, str], tuple[str | None, str]] = {}
        for node_id, extract in extracts.items():
            if node_id in result.watermarks:
                after = extract.watermark_after or extract.watermark
                result.watermarks[node_id] = (extract.watermark, after)
                if after is not None and after != extract.watermark:
                    value = json.dumps(after, separators=(",", ":"))
                    state[state_key(pipeline, node_id)] = (stored.get(node_id), value)
        for node_id, loader in loaders.items():
            loader.commit(state if loader is state_home else {})
            result.outputs[node_id] = loader.written
            say(f"{node_id}: {loader.written} rows committed")
    finally:
        for loader in loaders.values():
            loader.close()
    result.seconds = time.perf_counter() - started
    return result


__all__ = ["FileLoad", "NodeStats", "RunResult", "execute", "plan_pushdown"]
