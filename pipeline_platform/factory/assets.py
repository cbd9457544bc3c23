"""The table assets: subsettable ``multi_asset`` parts of at most 500 tables each.

The body only does I/O: for each selected table it calls the ingestion service and reports what
was written. Which tables exist, their keys, checks and data sources were decided at load time.

Why parts: Dagster 1.13 builds every asset job with a loop that, for each input of a node,
rebuilds the set of that node's checked assets (``asset_job.build_node_deps``), so one node of
N tables with a lag check each costs N² per job (3,000 tables: about 0.9 s per job, twice at
load). Parts of ``TABLES_PER_PART`` tables make it N × 500. A registry of up to 500 tables has
one part, ``ingest_tables``, exactly as before.
"""

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
from pydantic import Field

from pipeline_platform.factory import naming
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.monitoring.checks import run_verdicts
from pipeline_platform.monitoring.dagster_state import last_day_totals
from pipeline_platform.monitoring.tick import lag_seconds_after_run
from pipeline_platform.resources import KafkaResource, WarehouseResource

if TYPE_CHECKING:
    from pipeline_platform.ingestion.service import IngestionResult
    from pipeline_platform.registry.document import Topic


class IngestFn(Protocol):
    """The ingestion function a table asset calls (the service's ``ingest_table``)."""

    def __call__(
        self,
        topic: "Topic",
        *,
        warehouse_url: str,
        kafka_config: dict[str, str],
        run_id: str,
        max_messages: int | None = None,
        warn: Callable[[str], None] | None = None,
        parallelism: int = ...,
        worker_processes: bool = ...,
    ) -> "IngestionResult":
        """Ingest ``topic`` into its table and return what was done."""
        ...


TABLES_PER_PART = 500
#: Tables of one run ingested at the same time, each in its own worker process with its own
#: consumer and connection (see :mod:`pipeline_platform.ingestion.processes`).
TABLES_IN_PARALLEL = 2


class IngestConfig(dg.Config):
    """Run configuration of an ingestion run."""

    max_messages: int | None = Field(
        default=None,
        gt=0,
        description="Most messages to ingest per table in this run (unset = up to the end).",
    )


def default_ingest() -> IngestFn:
    """Return the ingestion service's ``ingest_table`` (imported when a run needs it)."""
    from pipeline_platform.ingestion.service import ingest_table

    return ingest_table


def materialization_metadata(result: "IngestionResult") -> dict[str, Any]:
    """Turn an ``IngestionResult`` into numeric metadata the UI plots over time.

    Args:
        result: The ingestion service's result.

    Returns:
        Rows written, dead letters, messages, seconds, messages/s, lag left, messages lost to
        retention (with the deleted offsets per partition when any), per partition the ingested
        offset range, and the run's last few dead letters (``last_dead_letters``: reason kind,
        partition@offset, reason).
    """
    metadata: dict[str, Any] = {
        "rows_written": int(result.rows_written),
        "dead_letters": int(result.dead_letters),
        "messages": int(result.messages),
        "seconds": round(float(result.seconds), 3),
        "messages_per_second": round(float(result.messages_per_second), 1),
        "lag_left": int(result.lag_left),
    }
    metadata["messages_lost_to_retention"] = int(getattr(result, "gaps", 0))
    for partition, (first, last) in sorted(getattr(result, "retention_lost", {}).items()):
        metadata[f"retention_lost/partition_{partition}"] = f"offsets {first}..{last}"
    for partition, (start, end) in sorted(result.offsets.items()):
        metadata[f"offsets/partition_{partition}/from"] = int(start)
        metadata[f"offsets/partition_{partition}/to"] = int(end)
    recent = getattr(result, "recent_dead_letters", ())
    if recent:
        metadata["last_dead_letters"] = dg.MetadataValue.text(recent_dead_letters_text(recent))
    return metadata


def recent_dead_letters_text(recent: Sequence[tuple[int, int, str]]) -> str:
    """Return a run's last dead letters, one line each: kind, partition@offset and reason."""
    from pipeline_platform.warehouse import reason_kind

    lines = []
    for partition, offset, reason in recent:
        text = reason if len(reason) <= 200 else f"{reason[:199]}…"
        lines.append(f"[{reason_kind(reason)}] {partition}@{offset}: {text}")
    return "\n".join(lines)


def shared_max_messages(run_config: Mapping[str, Any]) -> int | None:
    """Return ``max_messages`` set for ``ingest_tables`` in a run config, if any.

    The cap configured for the first part applies to every part of the run, so a sensor or a
    user configuring ``ops.ingest_tables`` caps every table whatever part it is in.
    """
    ops = run_config.get("ops") or {}
    op_config = (ops.get(naming.INGESTION_OP_NAME) or {}).get("config") or {}
    value = op_config.get("max_messages")
    return int(value) if value is not None else None


def build_ingestion_assets(
    targets: Sequence[TableTarget],
    specs: Sequence[dg.AssetSpec],
    check_specs: Sequence[dg.AssetCheckSpec] = (),
    ingest: IngestFn | None = None,
    tables_per_part: int | None = None,
) -> list[dg.AssetsDefinition]:
    """Return the multi-assets that ingest every table, in parts of ``tables_per_part`` tables.

    Tables are assigned to parts in asset-key order; a table's checks go with it.

    Args:
        targets: Ingestion targets, one per table spec.
        specs: The table asset specs.
        check_specs: Asset checks on the tables (``pipeline_platform.monitoring.checks``).
        ingest: The ingestion function; the ingestion service's ``ingest_table`` by default.
        tables_per_part: Most tables per multi-asset; ``TABLES_PER_PART`` by default.

    Returns:
        Subsettable multi-assets named ``ingest_tables``, ``ingest_tables_part_2``, ...
    """
    by_key = {target.key: target for target in targets}
    ordered = sorted(specs, key=lambda spec: spec.key.to_user_string())
    size = max(1, tables_per_part or TABLES_PER_PART)
    parts: list[dg.AssetsDefinition] = []
    for part, start in enumerate(range(0, len(ordered), size)):
        part_specs = ordered[start : start + size]
        keys = {spec.key for spec in part_specs}
        parts.append(
            _ingestion_part(
                naming.ingestion_op_name(part),
                {key: by_key[key] for key in keys},
                part_specs,
                [check for check in check_specs if check.asset_key in keys],
                ingest,
            )
        )
    return parts


def _ingestion_part(
    op_name: str,
    by_key: Mapping[dg.AssetKey, TableTarget],
    specs: Sequence[dg.AssetSpec],
    check_specs: Sequence[dg.AssetCheckSpec],
    ingest: IngestFn | None,
) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=op_name,
        specs=list(specs),
        check_specs=list(check_specs),
        can_subset=True,
        description="Ingest Kafka topics into their tables (any subset of this part's tables).",
    )
    def ingest_tables(
        context: dg.AssetExecutionContext,
        config: IngestConfig,
        warehouse: WarehouseResource,
        kafka: KafkaResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        run = ingest or default_ingest()
        kafka_config = kafka.client_config()
        selected_checks = context.selected_asset_check_keys
        max_messages = config.max_messages
        if max_messages is None and op_name != naming.INGESTION_OP_NAME:
            max_messages = shared_max_messages(context.run.run_config)
        keys = sorted(context.selected_asset_keys, key=lambda k: k.to_user_string())
        urls: dict[dg.AssetKey, str | Exception] = {}
        for key in keys:
            try:
                urls[key] = warehouse.url_for(
                    by_key[key].table.data_source, by_key[key].data_source
                )
            except Exception as error:  # reported as this table's failure
                urls[key] = error
        single_writer = {
            url: threading.Lock() for url in urls.values() if isinstance(url, str) and _single(url)
        }

        forked = ingest is None and len(keys) > 1 and not single_writer and _processes()
        if forked:  # a process per table fills the cores: one partition reader per table
            run = functools.partial(run, parallelism=1)
        elif ingest is None:  # one table: its partition readers fill the cores as processes
            run = functools.partial(run, worker_processes=True)

        def log_start(key: dg.AssetKey) -> None:
            context.log.info(f"Ingesting {by_key[key].topic.name} into {key.to_user_string()}")

        def ingest_one(
            key: dg.AssetKey, warn: Callable[[str], None] = context.log.warning
        ) -> "IngestionResult":
            target, url = by_key[key], urls[key]
            if isinstance(url, Exception):
                raise url
            lock = single_writer.get(url)
            with lock if lock is not None else contextlib.nullcontext():
                if len(keys) > 1 and not forked:  # one table: its materialization says it all
                    log_start(key)
                return run(
                    target.topic,
                    warehouse_url=url,
                    kafka_config=kafka_config,
                    run_id=context.run.run_id,
                    max_messages=max_messages,
                    warn=warn,
                )

        def ingest_forked(key: dg.AssetKey) -> tuple["IngestionResult", list[str]]:
            lines: list[str] = []  # in a worker process: warnings travel back with the result
            return ingest_one(key, lines.append), lines

        outcomes = (
            _forked_tables(keys, ingest_forked, log_start, context.log.warning)
            if forked
            else _run_tables(keys, ingest_one)
        )
        failures: list[str] = []
        for key, outcome in outcomes:
            name = key.to_user_string()
            if isinstance(outcome, Exception):
                context.log.error(f"Ingestion of {name} failed: {_one_line(outcome)}")
                failures.append(name)
                continue
            result, target, warehouse_url = outcome, by_key[key], str(urls[key])
            day = None  # the 24 h totals read the instance: only for a selected ratio check
            if dg.AssetCheckKey(key, naming.DEAD_LETTER_CHECK_NAME) in selected_checks:
                day = last_day_totals(context.instance, key, time.time())
            if day is not None:
                day = (day[0] + int(result.dead_letters), day[1] + int(result.messages))
            yield dg.MaterializeResult(asset_key=key, metadata=materialization_metadata(result))
            age = None
            if dg.AssetCheckKey(key, naming.MAX_LAG_SECONDS_CHECK_NAME) in selected_checks:
                age = lag_seconds_after_run(
                    target.topic,
                    warehouse_url=warehouse_url,
                    kafka_config=kafka_config,
                    lag_left=int(result.lag_left),
                )
            for verdict in run_verdicts(target.table, result, day, age):
                if dg.AssetCheckKey(key, verdict.check_name) in selected_checks:
                    yield verdict.as_result(key)
        if failures:
            raise dg.Failure(
                f"Ingestion failed for {len(failures)} table(s): {', '.join(failures)}",
                metadata={"failed_tables": failures},
            )

    return ingest_tables


def _run_tables(
    keys: Sequence[dg.AssetKey], ingest_one: Callable[[dg.AssetKey], "IngestionResult"]
) -> Iterator[tuple[dg.AssetKey, "IngestionResult | Exception"]]:
    """Ingest tables, ``TABLES_IN_PARALLEL`` at a time; yield each outcome as it completes.

    A run of several small tables spends most of each table's time waiting (broker round trips,
    database commits), so two tables at once nearly double a packed run's rate on 2 cores.
    """
    if len(keys) <= 1 or TABLES_IN_PARALLEL <= 1:
        for key in keys:
            try:
                yield key, ingest_one(key)
            except Exception as error:
                yield key, error
        return
    with ThreadPoolExecutor(max_workers=min(TABLES_IN_PARALLEL, len(keys))) as pool:
        futures = {pool.submit(ingest_one, key): key for key in keys}
        for future in as_completed(futures):
            failed = future.exception()
            yield futures[future], failed if isinstance(failed, Exception) else future.result()


def _forked_tables(
    keys: Sequence[dg.AssetKey],
    ingest_forked: Callable[[dg.AssetKey], tuple["IngestionResult", list[str]]],
    log_start: Callable[[dg.AssetKey], None],
    warn: Callable[[str], None],
) -> Iterator[tuple[dg.AssetKey, "IngestionResult | Exception"]]:
    """Ingest tables in ``TABLES_IN_PARALLEL`` forked worker processes; yield as they end.

    Each table's messages are decoded and mapped in Python, so threads of one process share
    one core; worker processes use every core the run has (4 tables x 50,000 messages on 2
    cores: 159k-168k msg/s vs 117k with threads, ``bench_run_overhead``).
    """
    from pipeline_platform.ingestion.processes import forked_map

    for key, outcome in forked_map(ingest_forked, keys, TABLES_IN_PARALLEL, on_start=log_start):
        if isinstance(outcome, Exception):
            yield key, outcome
            continue
        result, warnings = outcome
        for line in warnings:
            warn(line)
        yield key, result


def _processes() -> bool:
    """Whether this platform runs ingestion in worker processes (else threads)."""
    from pipeline_platform.ingestion.processes import available

    return available()


def _single(url: str) -> bool:
    """True for a single-writer warehouse (SQLite): its tables are ingested one at a time."""
    from pipeline_platform.warehouse.connect import backend_of

    try:
        return backend_of(url) == "sqlite"
    except ValueError:  # an unsupported URL fails in the ingestion of its table
        return False


def _one_line(error: Exception) -> str:
    """Return an error as one line; a reason written for users is shown without its type."""
    from pipeline_platform.warehouse import ColumnTypeMismatch

    text = str(error).splitlines()[0] if str(error) else ""
    return text if isinstance(error, ColumnTypeMismatch) else f"{type(error).__name__}: {text}"
