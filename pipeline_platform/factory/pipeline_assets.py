"""Table pipeline assets, and the realtime sensors that launch them.

One ``multi_asset`` per pipeline (its loader outputs), built by one shared function from the
translated :class:`PipelineTarget`; the body only runs the plan and reports what happened.
"""

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import dagster as dg

from pipeline_platform.config import environment
from pipeline_platform.factory.pipeline_translator import (
    SHARED_JOB_NAME,
    PipelineTarget,
    run_request,
)
from pipeline_platform.pipelines.connections import MissingCredentials
from pipeline_platform.pipelines.run_tags import (
    PIPELINE_TAG,
    TRIGGER_TAG,
    USER_TAG,
    tags_to_add,
    trigger_of,
)
from pipeline_platform.registry.document import RegistryDocument

SENSOR_INTERVAL_SECONDS = 30
PIPELINES_OP_NAME = "run_table_pipelines"
PER_PART = 500
FIRST_RUN_SENSOR_NAME = "table_pipelines_first_run"
FIRST_RUN_INTERVAL_SECONDS = 10

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


def _ordered(targets: Sequence[PipelineTarget]) -> list[PipelineTarget]:
    """Return the pipelines so that one reading another's output comes after it."""
    writer = {key: t.pipeline.name for t in targets for key in t.keys}
    by_name = {t.pipeline.name: t for t in targets}
    done: set[str] = set()
    ordered: list[PipelineTarget] = []

    def visit(target: PipelineTarget, path: frozenset[str]) -> None:
        name = target.pipeline.name
        if name in done or name in path:
            return
        for spec in target.outputs.values():
            for dep in spec.deps:
                upstream = writer.get(dep.asset_key)
                if upstream and upstream != name:
                    visit(by_name[upstream], path | {name})
        done.add(name)
        ordered.append(target)

    for target in targets:
        visit(target, frozenset())
    return ordered


def _run_one(
    context: dg.AssetExecutionContext, target: PipelineTarget, document: RegistryDocument
) -> Iterator[dg.MaterializeResult]:
    pipeline = target.pipeline
    stored = context.instance.get_run_by_id(context.run.run_id)  # context.run's tags are stale
    tags = stored.tags if stored is not None else context.run.tags
    missing = tags_to_add(tags, pipeline.name)
    if missing:  # launched without our tags (UI Materialize, `dagster job launch`, ...)
        context.instance.add_run_tags(context.run.run_id, missing)
        tags = {**tags, **missing}
    trigger = trigger_of(tags)
    user = tags.get(USER_TAG)
    context.log.info(
        f"Pipeline {pipeline.name}: trigger {trigger}" + (f", user {user}" if user else "")
    )
    try:
        result = default_execute()(
            target.plan,
            document,
            run_id=context.run.run_id,
            log=lambda line: context.log.info(f"{pipeline.name}: {line}"),
        )
    except MissingCredentials as error:
        raise dg.Failure(str(error)) from None
    selected = context.selected_asset_keys
    for node_id, spec in target.outputs.items():
        if spec.key in selected:
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={
                    **run_metadata(result, node_id),
                    "pipeline": pipeline.name,
                    "trigger": trigger,
                },
            )


def _pipelines_part(
    name: str, targets: Sequence[PipelineTarget], document: RegistryDocument
) -> dg.AssetsDefinition:
    ordered = _ordered(targets)

    @dg.multi_asset(
        name=name,
        specs=[spec for target in ordered for spec in target.outputs.values()],
        can_subset=True,
        description="Run table pipelines (any subset: a pipeline runs when one of its outputs "
        "is selected; pipelines reading other pipelines' outputs run after them).",
    )
    def run_pipelines(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        selected = context.selected_asset_keys
        failures: list[str] = []
        for target in ordered:
            if not any(key in selected for key in target.keys):
                continue
            try:
                yield from _run_one(context, target, document)
            except Exception as error:
                context.log.error(f"Pipeline {target.pipeline.name} failed: {error}")
                failures.append(target.pipeline.name)
        if failures:
            raise dg.Failure(f"{len(failures)} pipeline(s) failed: {', '.join(failures)}")

    return run_pipelines


def build_pipeline_assets(
    targets: Sequence[PipelineTarget], document: RegistryDocument, per_part: int = PER_PART
) -> list[dg.AssetsDefinition]:
    """Return subsettable multi-assets over every pipeline's outputs, ``per_part`` pipelines each.

    One op per pipeline would cost Dagster time per op at every load (500 pipelines about
    doubled a large registry's load); parts keep it to a handful of ops.
    """
    ordered = _ordered(targets)
    return [
        _pipelines_part(
            PIPELINES_OP_NAME
            if start == 0
            else f"{PIPELINES_OP_NAME}_part_{start // per_part + 1}",
            ordered[start : start + per_part],
            document,
        )
        for start in range(0, len(ordered), max(1, per_part))
    ]


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
            found = check(target.plan, document, environment())
        except Exception as error:
            return dg.SkipReason(f"probe failed: {type(error).__name__}: {str(error)[:200]}")
        if not found:
            return dg.SkipReason("no rows past the watermark")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(tags={PIPELINE_TAG: pipeline.name, TRIGGER_TAG: "sensor"})]
        )

    return realtime_sensor


def build_first_run_sensor(
    targets: Sequence[PipelineTarget],
    external: Collection[dg.AssetKey] = (),
    interval_seconds: int = FIRST_RUN_INTERVAL_SECONDS,
) -> dg.SensorDefinition:
    """Return a sensor that runs each active batch pipeline once, when its sources have data.

    For the local stack (``PIPELINE_PIPELINES_FIRST_RUN``): a batch pipeline's cron may not fire
    for hours, so each one runs as soon as every source table it reads has been materialized
    (ingested, or written by the pipeline it chains from); ``external`` source tables, which
    nothing materializes, do not wait. The runs go ahead of queued ingestion runs (priority 1).
    The cursor lists the pipelines already launched.
    """
    batch = [t for t in targets if t.pipeline.mode == "batch" and t.pipeline.status == "active"]

    @dg.sensor(
        name=FIRST_RUN_SENSOR_NAME,
        job_name=SHARED_JOB_NAME,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs each batch table pipeline once, as soon as its source tables have data.",
    )
    def first_run(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        launched = set(json.loads(context.cursor)) if context.cursor else set()
        requests = []
        for target in batch:
            name = target.pipeline.name
            if name in launched:
                continue
            sources = {d.asset_key for spec in target.outputs.values() for d in spec.deps}
            latest = context.instance.get_latest_materialization_event
            if not all(key in external or latest(key) is not None for key in sources):
                continue
            request = run_request(target, "sensor")
            requests.append(
                request.with_replaced_attrs(
                    run_key=f"first-run:{name}",
                    # Ahead of the ingestion backlog in the run queue: a one-off run.
                    tags={**request.tags, "dagster/priority": "1"},
                )
            )
            launched.add(name)
        if not requests:
            return dg.SkipReason("no batch pipeline left whose source tables all have data")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(launched)))

    return first_run
