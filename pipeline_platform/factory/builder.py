"""Assemble Dagster ``Definitions`` from a registry snapshot.

The shape does not grow with the registry: multi-asset parts of 500 tables, one ingestion job,
one job per flow, a fixed number of Kafka lag sensors, one reload sensor and, when an alert
target is configured (``PIPELINE_ALERT_*``), the two alert sensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import dagster as dg

from pipeline_platform.config import (
    DEFAULTS,
    environment,
    load_alert_settings,
    load_settings,
    read_environment,
)
from pipeline_platform.factory import naming
from pipeline_platform.factory.alert_sensors import build_alert_sensors
from pipeline_platform.factory.assets import IngestFn, build_ingestion_assets
from pipeline_platform.factory.loader import registry_revision
from pipeline_platform.factory.pipeline_assets import (
    build_first_run_sensor,
    build_pipeline_assets,
    build_realtime_sensor,
)
from pipeline_platform.factory.pipeline_translator import (
    SHARED_JOB_NAME,
    PipelineTarget,
    PipelineTranslator,
    pipeline_jobs,
)
from pipeline_platform.factory.sensors import (
    LagSensorOptions,
    build_kafka_sensors,
    build_reload_sensor,
)
from pipeline_platform.factory.snapshot import RegistrySnapshot
from pipeline_platform.factory.translator import RegistryTranslator, TranslatedRegistry
from pipeline_platform.registry.gc_pause import freeze_long_lived, gc_paused, release_frozen
from pipeline_platform.resources import build_resources


@dataclass(frozen=True)
class FactoryOptions:
    """Load-time switches of the factory.

    Attributes:
        kafka_sensor_running: Kafka lag sensors start RUNNING (``PIPELINE_KAFKA_SENSOR_RUNNING``).
        reload_sensor_running: The reload sensor starts RUNNING
            (``PIPELINE_RELOAD_SENSOR_RUNNING``, default on).
        kafka_sensor_shards: Number of Kafka lag sensors (``PIPELINE_KAFKA_SENSOR_SHARDS``).
        reload_interval_seconds: Seconds between reload sensor ticks.
        flow_job_budget: Most (flow jobs × assets) to build flow jobs for
            (``PIPELINE_FLOW_JOB_BUDGET``). Dagster resolves every asset job against the whole
            asset graph, so each job costs time proportional to all assets; above the budget,
            flows stay asset groups (materialized from their group page) without jobs.
        pipeline_job_budget: Most (table pipelines × assets) to build a job per table pipeline
            for (``PIPELINE_PIPELINE_JOB_BUDGET``); above it, schedules and sensors run the
            shared ``table_pipelines`` job with the pipeline's outputs selected.
        pipelines_first_run: A running sensor runs each active batch table pipeline once when
            its source tables have data (``PIPELINE_PIPELINES_FIRST_RUN``; the local stack).
        lag: Kafka sensor polling limits (``PIPELINE_INGEST_MAX_MESSAGES`` caps a run,
            ``PIPELINE_KAFKA_SENSOR_INTERVAL`` spaces ticks; ``PIPELINE_KAFKA_SENSOR_MAX_RUNS``,
            ``PIPELINE_INGEST_RUN_MAX_TABLES`` and ``PIPELINE_INGEST_RUN_MAX_MESSAGES`` pack tables
            into runs).
    """

    kafka_sensor_running: bool = DEFAULTS.kafka_sensor_running
    reload_sensor_running: bool = DEFAULTS.reload_sensor_running
    kafka_sensor_shards: int = DEFAULTS.kafka_sensor_shards
    reload_interval_seconds: int = DEFAULTS.reload_sensor_interval
    flow_job_budget: int = DEFAULTS.flow_job_budget
    pipeline_job_budget: int = DEFAULTS.pipeline_job_budget
    pipelines_first_run: bool = DEFAULTS.pipelines_first_run
    lag: LagSensorOptions = field(default_factory=LagSensorOptions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FactoryOptions:
        """Read the options from the environment (call at load time, never at import time)."""
        values = read_environment(environ)
        lag = replace(
            LagSensorOptions(),
            max_messages_per_run=values.ingest_max_messages or None,
            interval_seconds=values.kafka_sensor_interval,
            max_runs_per_tick=values.kafka_sensor_max_runs,
            max_tables_per_run=values.ingest_run_max_tables,
            max_messages_per_packed_run=values.ingest_run_max_messages,
        )
        return cls(
            kafka_sensor_running=values.kafka_sensor_running,
            reload_sensor_running=values.reload_sensor_running,
            kafka_sensor_shards=values.kafka_sensor_shards,
            reload_interval_seconds=values.reload_sensor_interval,
            flow_job_budget=values.flow_job_budget,
            pipeline_job_budget=values.pipeline_job_budget,
            pipelines_first_run=values.pipelines_first_run,
            lag=lag,
        )


def _revision_at(url: str) -> str:
    return registry_revision(replace(load_settings(), registry_url=url))


def registry_status_spec(
    snapshot: RegistrySnapshot, translated: TranslatedRegistry, notes: Sequence[str] = ()
) -> dg.AssetSpec:
    """Return the ``pipeline_platform/registry_status`` asset that tells the user what was loaded.

    Its description carries the fallback warning and the skipped records, so the UI shows them.
    """
    lines = [
        f"Registry snapshot: revision {snapshot.revision}, from {snapshot.origin}, "
        f"read {snapshot.loaded_at}."
    ]
    if snapshot.warning:
        lines.insert(0, f"WARNING: {snapshot.warning}")
    lines.extend(notes)
    skipped = [*snapshot.problems, *(str(record) for record in translated.skipped)]
    if skipped:
        lines.append(f"{len(skipped)} registry record(s) skipped:")
        lines.extend(f"- {record}" for record in skipped[:50])
    metadata: dict[str, object] = {
        "revision": snapshot.revision,
        "origin": snapshot.origin,
        "loaded_at": snapshot.loaded_at,
        "fallback": snapshot.is_fallback,
        "topics": len(translated.topic_specs),
        "tables": len(translated.table_specs),
        "skipped_records": len(skipped),
    }
    if snapshot.warning:
        metadata["warning"] = snapshot.warning
    if skipped:
        metadata["skipped"] = skipped
    return dg.AssetSpec(
        key=naming.REGISTRY_STATUS_KEY,
        description="\n".join(lines),
        group_name=naming.PLATFORM_GROUP,
        kinds={"sql"},
        metadata=metadata,
        tags={"pipeline_platform/status": "fallback" if snapshot.is_fallback else "live"},
    )


def flows_with_jobs(translated: TranslatedRegistry, budget: int) -> dict[str, str]:
    """Return the flows (name → group) that get a job: those with tables, within the budget.

    Args:
        translated: The translated registry.
        budget: Most (flow jobs × assets); see :class:`FactoryOptions`.

    Returns:
        The flows to build a job for; empty when the registry is over the budget.
    """
    groups_with_tables = {spec.group_name for spec in translated.table_specs}
    flows = {
        flow: group for flow, group in translated.flow_groups.items() if group in groups_with_tables
    }
    n_assets = len(translated.external_specs) + len(translated.table_specs)
    return flows if len(flows) * n_assets <= budget else {}


def _flow_jobs(
    translated: TranslatedRegistry, budget: int
) -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            naming.flow_job_name(group),
            selection=dg.AssetSelection.groups(group).materializable(),
            description=f"Ingest the tables of flow {flow_name}",
            tags={"pipeline_platform/flow": group},
        )
        for flow_name, group in flows_with_jobs(translated, budget).items()
    ]


_BUILT: dict[tuple[int, int], tuple[RegistrySnapshot, dg.Definitions]] = {}


def definitions_for(snapshot: RegistrySnapshot) -> dg.Definitions:
    """Return :func:`build_definitions` of ``snapshot``, built once per process and environment.

    Dagster rebuilds a code location several times in one process (the CLI loads it, then
    reconstructs it for the run, the plan and each step); the loader hands back the same
    snapshot object for the same payload, so the definitions are translated once.

    Args:
        snapshot: The registry snapshot of this load.

    Returns:
        The definitions (the same object for the same snapshot and environment).
    """
    key = (id(snapshot), hash(frozenset(environment().items())))
    cached = _BUILT.get(key)
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    built = build_definitions(snapshot)
    _BUILT.clear()
    _BUILT[key] = (snapshot, built)
    return built


def build_definitions(
    snapshot: RegistrySnapshot,
    *,
    translator: RegistryTranslator | None = None,
    pipeline_translator: PipelineTranslator | None = None,
    options: FactoryOptions | None = None,
    ingest: IngestFn | None = None,
    environ: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """Translate a snapshot into the code location's definitions.

    Args:
        snapshot: The registry snapshot.
        translator: Customised translator; :class:`RegistryTranslator` by default.
        pipeline_translator: Customised table-pipeline translator.
        options: Load-time switches; read from ``environ`` when omitted.
        ingest: Ingestion function for the table assets (tests); the service's by default.
        environ: Environment for options and resources; the process environment when omitted.

    Returns:
        Assets, jobs, sensors and resources. The cyclic collector is paused during the build
        and every object alive at the end is frozen out of its full passes until the next
        build (see :func:`~pipeline_platform.registry.gc_pause.freeze_long_lived`).
    """
    release_frozen()
    with gc_paused():  # tens of thousands of specs, none garbage: collections only cost
        definitions = _build(
            snapshot, translator, pipeline_translator, options or FactoryOptions.from_env(environ),
            ingest, environ,
        )  # fmt: skip
        # Resolved now, as the code server, a run and `pipelines run` all do right after.
        definitions.get_repository_def().get_all_jobs()
    freeze_long_lived()
    return definitions


def _build(
    snapshot: RegistrySnapshot,
    translator: RegistryTranslator | None,
    pipeline_translator: PipelineTranslator | None,
    options: FactoryOptions,
    ingest: IngestFn | None,
    environ: Mapping[str, str] | None,
) -> dg.Definitions:
    translated = (translator or RegistryTranslator()).translate(snapshot.document)

    flow_jobs = _flow_jobs(translated, options.flow_job_budget)
    pipeline_translator = pipeline_translator or PipelineTranslator()
    pipelines = pipeline_translator.translate(
        snapshot.document, taken=(t.key for t in translated.tables)
    )
    notes = [f"Skipped: {record}" for record in pipelines.skipped]
    if (
        pipelines.targets
        and len(pipelines.targets) * (len(translated.external_specs) + len(translated.table_specs))
        > options.pipeline_job_budget
    ):
        notes.append(
            "Table pipelines share the `table_pipelines` job at this registry size "
            "(PIPELINE_PIPELINE_JOB_BUDGET): their schedules and sensors select their outputs."
        )
    if translated.tables and not flow_jobs and translated.flow_groups:
        notes.append(
            "Flows have no jobs at this registry size (PIPELINE_FLOW_JOB_BUDGET): materialize a "
            "flow from its asset group page or with the `ingestion` job."
        )
    assets: list[dg.AssetSpec | dg.AssetsDefinition] = [
        registry_status_spec(snapshot, translated, notes),
        *translated.external_specs,
    ]
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    if translated.tables:
        assets.extend(
            build_ingestion_assets(
                translated.tables, translated.table_specs, translated.table_checks, ingest
            )
        )
        jobs.append(
            dg.define_asset_job(
                naming.INGESTION_JOB_NAME,
                selection=dg.AssetSelection.assets(*(t.key for t in translated.tables)),
                description="Ingest Kafka topics into tables (any subset; launched by sensors).",
            )
        )
        sensors.extend(
            build_kafka_sensors(
                translated.tables,
                shards=options.kafka_sensor_shards,
                running=options.kafka_sensor_running,
                options=options.lag,
            )
        )
    jobs.extend(flow_jobs)
    assets.extend(pipelines.source_specs)
    assets.extend(build_pipeline_assets(pipelines.targets, snapshot.document))
    n_assets = (
        len(translated.external_specs) + len(translated.table_specs)
        + len(pipelines.source_specs) + sum(len(t.outputs) for t in pipelines.targets)
    )  # fmt: skip
    per_pipeline = len(pipelines.targets) * n_assets <= options.pipeline_job_budget
    jobs.extend(pipeline_jobs(pipelines.targets, per_pipeline))

    def job_of(target: PipelineTarget) -> str:
        return target.job_name if per_pipeline else SHARED_JOB_NAME

    schedules = [
        schedule
        for target in pipelines.targets
        if (schedule := pipeline_translator.get_schedule(target, job_of(target))) is not None
    ]
    sensors.extend(
        build_realtime_sensor(target, snapshot.document, job_of(target))
        for target in pipelines.targets
        if target.pipeline.mode == "realtime"
    )
    if options.pipelines_first_run and pipelines.targets:
        external = {spec.key for spec in pipelines.source_specs}
        sensors.append(build_first_run_sensor(pipelines.targets, external))
    sensors.append(
        build_reload_sensor(
            None if snapshot.is_fallback else snapshot.revision,
            read_revision=_revision_at,
            running=options.reload_sensor_running,
            interval_seconds=options.reload_interval_seconds,
        )
    )
    sensors.extend(build_alert_sensors(load_alert_settings(environ)))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(environ),
        # Ingestion and pipeline runs are one step (or a few sequential ones): running them in
        # the run worker saves a second Python process that imports Dagster again for the step
        # (about 2-3 s per run on 2 cores). Also the executor of `dagster asset materialize`.
        executor=dg.in_process_executor,
    )
