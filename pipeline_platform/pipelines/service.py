"""Pipeline operations the CLI (and an API) call: run now, list runs, preview.

``run_now`` executes the pipeline's Dagster job (the same assets and job the UI's Materialize
runs) in this process, recorded in the Dagster instance with ``trigger=cli``; ``list_runs``
reads the instance's run history and each run's materialization metadata.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline_platform.pipelines.graph import PipelinePlan, build_plan, presets_by_name
from pipeline_platform.pipelines.run_tags import (
    PIPELINE_TAG,
    TRIGGER_TAG,
    USER_TAG,
    run_filters,
    trigger_of,
)
from pipeline_platform.registry.document import Pipeline, RegistryDocument


def find_pipeline(document: RegistryDocument, name: str) -> Pipeline:
    """Return the pipeline called ``name``.

    Raises:
        LookupError: when there is none (the message names it).
    """
    found = next((p for p in document.pipelines if p.name == name), None)
    if found is None:
        raise LookupError(f"unknown pipeline {name!r}")
    return found


def plan_of(document: RegistryDocument, name: str) -> PipelinePlan:
    """Return the run plan of pipeline ``name`` (presets resolved)."""
    return build_plan(find_pipeline(document, name), presets_by_name(document.presets))


def run_now(document: RegistryDocument, name: str, defs: Any, instance: Any) -> dict[str, Any]:
    """Run a pipeline's job in this process, recorded in ``instance`` with ``trigger=cli``.

    Returns:
        ``{"run_id", "status", "rows_read", "rows_written", "rows_rejected"}``.
    """
    from pipeline_platform.factory.pipeline_translator import SHARED_JOB_NAME, PipelineTranslator

    pipeline = find_pipeline(document, name)
    translator = PipelineTranslator()
    tags = {TRIGGER_TAG: "cli", USER_TAG: getpass.getuser(), PIPELINE_TAG: pipeline.name}
    names = {job.name for job in defs.get_repository_def().get_all_jobs()}
    own = translator.get_job_name(pipeline)
    if own in names:
        job = defs.resolve_job_def(own)
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    else:
        target = next(
            t for t in translator.translate(document).targets if t.pipeline.name == pipeline.name
        )
        job = defs.resolve_job_def(SHARED_JOB_NAME)
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, asset_selection=target.keys
        )
    summary = _run_totals(instance, result.run_id, pipeline.name)
    return {"run_id": result.run_id, "status": "SUCCESS" if result.success else "FAILURE",
            **summary}  # fmt: skip


def _run_totals(instance: Any, run_id: str, name: str) -> dict[str, int]:
    """Return pipeline ``name``'s rows read / written / rejected in a run (0 before any)."""
    import dagster as dg

    totals = {"rows_read": 0, "rows_written": 0, "rows_rejected": 0}
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:  # run totals are on each of the pipeline's outputs: read one
        metadata = record.event_log_entry.asset_materialization.metadata
        if "pipeline" in metadata and metadata["pipeline"].value != name:
            continue  # another pipeline of the same run
        for key in totals:
            if key in metadata:
                totals[key] = int(metadata[key].value)
        break
    return totals


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def list_runs(instance: Any, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """Return the last runs of a pipeline, newest first (status, times, rows, trigger, user).

    A run is found by its pipeline tags, which every run of the pipeline carries whatever
    launched it (see :mod:`pipeline_platform.pipelines.run_tags`).
    """
    import dagster as dg

    found = {
        record.dagster_run.run_id: record
        for tags in run_filters(name)
        for record in instance.get_run_records(dg.RunsFilter(tags=tags), limit=limit)
    }
    records = sorted(found.values(), key=lambda r: r.create_timestamp, reverse=True)[:limit]
    out = []
    for record in records:
        run = record.dagster_run
        totals = _run_totals(instance, run.run_id, name)
        out.append(
            {
                "run_id": run.run_id,
                "status": run.status.value,
                "start": _iso(record.start_time),
                "end": _iso(record.end_time),
                "records_processed": totals["rows_written"],
                "records_read": totals["rows_read"],
                "records_failed": totals["rows_rejected"],
                "trigger": trigger_of(run.tags),
                "user": run.tags.get(USER_TAG),
            }
        )
    return out


def preview(
    document: RegistryDocument,
    name: str,
    rows: int = 10,
    node: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run a pipeline on a sample, writing nothing, and return each node's first rows and counts.

    Returns:
        ``[{"node", "module", "rows_in", "rows_out", "columns", "rows": [[...], ...]}]`` in plan
        order (only ``node`` when given).
    """
    from pipeline_platform.pipelines.runner import execute

    plan = plan_of(document, name)
    if node is not None and node not in {n.id for n in plan.nodes}:
        raise LookupError(f"pipeline {name!r} has no node {node!r}")
    result = execute(plan, document, run_id=uuid.uuid4().hex, environ=environ, log=lambda _: None,
                     preview_rows=rows)  # fmt: skip
    out = []
    for plan_node in plan.nodes:
        if node is not None and plan_node.id != node:
            continue
        stats = result.nodes[plan_node.id]
        sample = result.samples.get(plan_node.id)
        columns = [str(c) for c in sample.columns] if sample is not None else []
        values = (
            sample.astype(object).where(sample.notna(), None).values.tolist()
            if sample is not None
            else []
        )
        out.append(
            {
                "node": plan_node.id,
                "module": plan_node.module.name,
                "rows_in": stats.rows_in,
                "rows_out": stats.rows_out,
                "columns": columns,
                "rows": [[_plain(v) for v in row] for row in values],
            }
        )
    return out


def _plain(value: Any) -> Any:
    from pipeline_platform.pipelines.watermark import scalar

    return scalar(value)
