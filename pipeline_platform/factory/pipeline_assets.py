"""Table pipeline assets, and the realtime sensors that launch them.

One ``multi_asset`` per pipeline (its loader outputs), built by one shared function from the
translated :class:`PipelineTarget`; the body only runs the plan and reports what happened.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg

from pipeline_platform.factory.pipeline_translator import (
    PIPELINE_TAG,
    TRIGGER_TAG,
    PipelineTarget,
)
from pipeline_platform.pipelines.connections import MissingCredentials
from pipeline_platform.registry.document import RegistryDocument

SENSOR_INTERVAL_SECONDS = 30

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_metadata(result: Any, node_id: str) -> dict[str, Any]:
    """Return the materialization metadata of one loader output of a pipeline run.

    Rows read / written / rejected (run totals and per node), duration, rows/s, watermarks
    before and after, and ``dagster/row_count`` (the rows this output received).
    """
    metadata: dict[str, Any] = {
        "dagster/row_count": int(result.outputs.get(node_id, 0)),
        "rows_read": int(result.rows_read),
        "rows_written": int(result.rows_written),
        "rows_rejected": int(result.rows_rejected),
        "duration_seconds": round(float(result.seconds), 3),
        "rows_per_second": round(float(result.rows_per_second), 1),
    }
    for node, stats in result.nodes.items():
        metadata[f"nodes/{node}/rows_in"] = int(stats.rows_in)
        metadata[f"nodes/{node}/rows_out"] = int(stats.rows_out)
        metadata[f"nodes/{node}/rejected"] = int(stats.rejected)
        if stats.pushed_down:
            metadata[f"nodes/{node}/pushed_down"] = True
    for node, (before, after) in result.watermarks.items():
        metadata[f"watermark/{node}/before"] = dg.MetadataValue.json(before or [])
        metadata[f"watermark/{node}/after"] = dg.MetadataValue.json(after or [])
    return metadata


def default_execute() -> Callable[..., Any]:
    """Return the runner's ``execute`` (imported when a run needs it)."""
    from pipeline_platform.pipelines.runner import execute

    return execute


def build_pipeline_asset(target: PipelineTarget, document: RegistryDocument) -> dg.AssetsDefinition:
    """Return the multi-asset of one pipeline: it runs the plan and materializes each output."""
    pipeline = target.pipeline

    @dg.multi_asset(
        name=target.op_name,
        specs=list(target.outputs.values()),
        description=f"Run table pipeline {pipeline.name}",
    )
    def run_pipeline(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        trigger = context.run.tags.get(TRIGGER_TAG, "manual")
        user = context.run.tags.get("dagster/user") or context.run.tags.get("user")
        context.log.info(
            f"Pipeline {pipeline.name}: trigger {trigger}" + (f", user {user}" if user else "")
        )
        try:
            result = default_execute()(
                target.plan, document, run_id=context.run.run_id, log=context.log.info
            )
        except MissingCredentials as error:
            raise dg.Failure(str(error)) from None
        for node_id, spec in target.outputs.items():
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={**run_metadata(result, node_id), "trigger": trigger},
            )

    return run_pipeline


def build_pipeline_assets(
    targets: Sequence[PipelineTarget], document: RegistryDocument
) -> list[dg.AssetsDefinition]:
    """Return the multi-asset of every pipeline."""
    return [build_pipeline_asset(target, document) for target in targets]


def build_realtime_sensor(
    target: PipelineTarget,
    document: RegistryDocument,
    job_name: str,
    probe: Callable[..., bool] | None = None,
    interval_seconds: int = SENSOR_INTERVAL_SECONDS,
) -> dg.SensorDefinition:
    """Return the sensor of a realtime pipeline: a run when its source has rows past the watermark.

    No run while one of the pipeline's runs is in flight; stopped by default for a paused pipeline.
    """
    pipeline = target.pipeline

    @dg.sensor(
        name=f"{target.job_name}_sensor",
        job_name=job_name,
        minimum_interval_seconds=interval_seconds,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if pipeline.status == "active"
            else dg.DefaultSensorStatus.STOPPED
        ),
        description=f"Launches {pipeline.name} when its source has rows past the watermark.",
    )
    def realtime_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        in_flight = context.instance.get_runs_count(
            dg.RunsFilter(tags={PIPELINE_TAG: pipeline.name}, statuses=_IN_FLIGHT)
        )
        if in_flight:
            return dg.SkipReason(f"a run of {pipeline.name} is in flight")
        if probe is None:
            from pipeline_platform.pipelines.realtime import has_new_rows

            check = has_new_rows
        else:
            check = probe
        try:
            found = check(target.plan, document, os.environ)
        except Exception as error:
            return dg.SkipReason(f"probe failed: {type(error).__name__}: {str(error)[:200]}")
        if not found:
            return dg.SkipReason("no rows past the watermark")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(tags={PIPELINE_TAG: pipeline.name, TRIGGER_TAG: "sensor"})]
        )

    return realtime_sensor
