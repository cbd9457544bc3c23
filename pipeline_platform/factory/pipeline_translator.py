"""Table pipelines → Dagster specs: output assets, upstream source tables, jobs, schedules.

:class:`PipelineTranslator` follows the registry translator's style: one small ``get_*``
method per decision, overridable in a subclass. :meth:`PipelineTranslator.translate` turns the
snapshot's pipelines into :class:`PipelineTarget` records (plan, output specs, job name,
schedule) once at load time; a pipeline that cannot be translated is skipped and reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.factory.translator import SkippedRecord
from pipeline_platform.pipelines.graph import PipelinePlan, PlanNode, build_plan, presets_by_name
from pipeline_platform.pipelines.run_tags import PIPELINE_TAG, TRIGGER_TAG
from pipeline_platform.registry.document import Pipeline, RegistryDocument

logger = logging.getLogger(__name__)

PIPELINE_GROUP = "table_pipelines"
SHARED_JOB_NAME = "table_pipelines"
_KIND_BY_SOURCE = {"postgresql": "postgres", "timescaledb": "timescaledb", "sqlite": "sqlite"}


@dataclass(frozen=True)
class PipelineTarget:
    """Everything the factory builds for one pipeline.

    Attributes:
        pipeline: The registry record.
        plan: The run plan (nodes in topological order, presets resolved).
        outputs: Loader node id → asset spec of its output table.
        job_name: Name of the pipeline's job (when jobs per pipeline are built).
    """

    pipeline: Pipeline
    plan: PipelinePlan
    outputs: dict[str, dg.AssetSpec]
    job_name: str

    @property
    def keys(self) -> list[dg.AssetKey]:
        """The output asset keys."""
        return [spec.key for spec in self.outputs.values()]


@dataclass(frozen=True)
class TranslatedPipelines:
    """The pipelines that translated, external specs of source tables, and what was skipped."""

    targets: tuple[PipelineTarget, ...]
    source_specs: tuple[dg.AssetSpec, ...]
    skipped: tuple[SkippedRecord, ...]


def _file_key(path: str) -> dg.AssetKey:
    return dg.AssetKey(["file", naming.dagster_name(PurePath(path).name)])


class PipelineTranslator:
    """Translate table pipelines; override a ``get_*`` method to change one decision."""

    def get_job_name(self, pipeline: Pipeline) -> str:
        """Return the job of a pipeline: ``pipeline_<name>``."""
        return f"pipeline_{naming.dagster_name(pipeline.name)}"

    def get_group_name(self, pipeline: Pipeline) -> str:
        """Return the asset group of a pipeline's outputs."""
        return PIPELINE_GROUP

    def get_node_key(self, node: PlanNode) -> dg.AssetKey | None:
        """Return the asset key of the table or file a node reads or writes (None: none)."""
        config = node.config
        if "table" in config:
            return naming.table_key(config["data_source"], config["table"])
        if "path" in config:
            return _file_key(str(config["path"]))
        return None

    def get_upstream_keys(self, plan: PipelinePlan) -> list[dg.AssetKey]:
        """Return the source tables of a pipeline (its extractors' tables and files)."""
        keys = (self.get_node_key(node) for node in plan.of_kind("extractor"))
        return list(dict.fromkeys(key for key in keys if key is not None))

    def get_output_spec(
        self, pipeline: Pipeline, plan: PipelinePlan, node: PlanNode, kinds: Mapping[str, str]
    ) -> dg.AssetSpec:
        """Return the asset of one loader's output, downstream of the pipeline's sources."""
        key = self.get_node_key(node)
        if key is None:
            raise ValueError(f"loader {node.id!r} has no table or path")
        config = node.config
        kind = (
            "file"
            if "path" in config
            else _KIND_BY_SOURCE.get(
                kinds.get(config.get("data_source", ""), "postgresql"), "postgres"
            )
        )
        metadata: dict[str, Any] = {
            "pipeline": pipeline.name,
            "mode": pipeline.mode,
            "modules": " → ".join(n.module.name for n in plan.nodes),
            "write_mode": config.get("mode", "replace" if "path" in config else "append"),
        }
        if pipeline.schedule:
            metadata["schedule"] = f"{pipeline.schedule} ({pipeline.timezone})"
        if "table" in config:
            schema = config.get("schema")
            metadata["dagster/table_name"] = (
                f"{schema}.{config['table']}" if schema else config["table"]
            )
        return dg.AssetSpec(
            key=key,
            description=pipeline.description or f"Written by table pipeline {pipeline.name}",
            deps=self.get_upstream_keys(plan),
            group_name=self.get_group_name(pipeline),
            kinds={kind, "table" if "table" in config else "file"},
            metadata=metadata,
            tags={PIPELINE_TAG: naming.dagster_name(pipeline.name)},
        )

    def get_source_spec(self, key: dg.AssetKey) -> dg.AssetSpec:
        """Return the external asset of a source table no pipeline or ingestion writes."""
        return dg.AssetSpec(key=key, group_name="sources", kinds={"table"},
                             description="Source table read by table pipelines")  # fmt: skip

    def translate(
        self, document: RegistryDocument, taken: Iterable[dg.AssetKey] = ()
    ) -> TranslatedPipelines:
        """Translate every pipeline of the snapshot.

        Args:
            document: The registry snapshot.
            taken: Asset keys already defined (ingested tables): a pipeline may read them
                (chaining) but not write them.

        Returns:
            Targets, external source specs and skipped pipelines.
        """
        presets = presets_by_name(document.presets)
        kinds = {source.name: source.kind for source in document.data_sources}
        written = set(taken)
        targets: list[PipelineTarget] = []
        skipped: list[SkippedRecord] = []
        names: set[str] = set()
        for pipeline in document.pipelines:
            try:
                plan = build_plan(pipeline, presets)
                outputs = {
                    node.id: self.get_output_spec(pipeline, plan, node, kinds)
                    for node in plan.of_kind("loader")
                }
                keys = [spec.key for spec in outputs.values()]
                clash = next((k for k in keys if k in written or keys.count(k) > 1), None)
                if clash is not None:
                    raise ValueError(f"{clash.to_user_string()} is written elsewhere too")
                job_name = self.get_job_name(pipeline)
                if job_name in names:
                    raise ValueError(f"job name {job_name} is taken")
            except Exception as error:
                skipped.append(SkippedRecord("pipeline", pipeline.name, f"{error}"))
                continue
            names.add(job_name)
            written.update(keys)
            targets.append(PipelineTarget(pipeline, plan, outputs, job_name))
        sources = [k for t in targets for k in self.get_upstream_keys(t.plan) if k not in written]
        for record in skipped:
            logger.warning("Registry record skipped: %s", record)
        return TranslatedPipelines(
            tuple(targets),
            tuple(self.get_source_spec(k) for k in dict.fromkeys(sources)),
            tuple(skipped),
        )

    def get_schedule(self, target: PipelineTarget, job_name: str) -> dg.ScheduleDefinition | None:
        """Return the cron schedule of a batch pipeline (stopped when the pipeline is paused).

        Args:
            target: The pipeline.
            job_name: The job its runs use: its own, or the shared ``table_pipelines`` job
                (then the run selects the pipeline's outputs).
        """
        pipeline = target.pipeline
        if pipeline.mode != "batch" or not pipeline.schedule:
            return None
        request = run_request(target, "schedule")

        def execution_fn(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
            return request

        return dg.ScheduleDefinition(
            name=f"{target.job_name}_schedule",
            job_name=job_name,
            cron_schedule=pipeline.schedule,
            execution_timezone=pipeline.timezone,
            execution_fn=execution_fn,
            default_status=_status(pipeline),
            description=f"Runs table pipeline {pipeline.name} on {pipeline.schedule}",
        )


def run_request(target: PipelineTarget, trigger: str) -> dg.RunRequest:
    """Return the run request of a pipeline: its outputs, tagged with its name and the trigger."""
    return dg.RunRequest(
        asset_selection=target.keys,
        tags={PIPELINE_TAG: target.pipeline.name, TRIGGER_TAG: trigger},
    )


def _status(pipeline: Pipeline) -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING
        if pipeline.status == "active"
        else dg.DefaultScheduleStatus.STOPPED
    )


def pipeline_jobs(
    targets: Sequence[PipelineTarget], per_pipeline: bool
) -> list[dg.UnresolvedAssetJobDefinition]:
    """Return the shared ``table_pipelines`` job and, if ``per_pipeline``, one job per pipeline.

    Dagster resolves each asset job against the whole asset graph, so a job per pipeline costs
    (pipelines × assets); above the factory's budget, runs use the shared job with the
    pipeline's outputs as asset selection.
    """
    if not targets:
        return []
    jobs = [
        dg.define_asset_job(
            SHARED_JOB_NAME,
            selection=dg.AssetSelection.assets(*(k for t in targets for k in t.keys)),
            description="Table pipelines (schedules and sensors select one pipeline's outputs).",
            tags={TRIGGER_TAG: "manual"},
        )
    ]
    if per_pipeline:
        jobs.extend(
            dg.define_asset_job(
                target.job_name,
                selection=dg.AssetSelection.assets(*target.keys),
                description=target.pipeline.description or f"Table pipeline {target.pipeline.name}",
                tags={PIPELINE_TAG: target.pipeline.name, TRIGGER_TAG: "manual"},
            )
            for target in targets
        )
    return jobs
