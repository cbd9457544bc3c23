"""The table assets: one subsettable ``multi_asset`` over every ingested table.

The body only does I/O: for each selected table it calls the ingestion service and reports what
was written. Which tables exist, their keys, checks and data sources were decided at load time.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from pipeline_platform.factory import naming
from pipeline_platform.factory.translator import TableTarget
from pipeline_platform.resources import KafkaResource, WarehouseResource

IngestFn = Callable[..., Any]


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


def materialization_metadata(result: Any) -> dict[str, Any]:
    """Turn an ``IngestionResult`` into numeric metadata the UI plots over time.

    Args:
        result: The ingestion service's result.

    Returns:
        Rows written, dead letters, messages, seconds, messages/s, lag left and, per partition,
        the ingested offset range.
    """
    metadata: dict[str, Any] = {
        "rows_written": int(result.rows_written),
        "dead_letters": int(result.dead_letters),
        "messages": int(result.messages),
        "seconds": round(float(result.seconds), 3),
        "messages_per_second": round(float(result.messages_per_second), 1),
        "lag_left": int(result.lag_left),
    }
    for partition, (start, end) in sorted(result.offsets.items()):
        metadata[f"offsets/partition_{partition}/from"] = int(start)
        metadata[f"offsets/partition_{partition}/to"] = int(end)
    return metadata


def build_ingestion_assets(
    targets: Sequence[TableTarget],
    specs: Sequence[dg.AssetSpec],
    check_specs: Sequence[dg.AssetCheckSpec] = (),
    ingest: IngestFn | None = None,
) -> dg.AssetsDefinition:
    """Return the one multi-asset that ingests every table.

    Args:
        targets: Ingestion targets, one per table spec.
        specs: The table asset specs.
        check_specs: Asset checks on the tables (lag thresholds).
        ingest: The ingestion function; the ingestion service's ``ingest_table`` by default.

    Returns:
        A subsettable multi-asset named ``ingest_tables``.
    """
    by_key = {target.key: target for target in targets}
    thresholds = {
        target.key: target.table.max_lag_messages
        for target in targets
        if target.table.max_lag_messages is not None
    }

    @dg.multi_asset(
        name=naming.INGESTION_OP_NAME,
        specs=list(specs),
        check_specs=list(check_specs),
        can_subset=True,
        description="Ingest Kafka topics into their tables (one step, any subset of tables).",
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
        failures: list[str] = []
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            target = by_key[key]
            name = key.to_user_string()
            context.log.info(f"Ingesting {target.topic.name} into {name}")
            try:
                result = run(
                    target.topic,
                    warehouse_url=warehouse.url_for(target.table.data_source, target.data_source),
                    kafka_config=kafka_config,
                    run_id=context.run.run_id,
                    max_messages=config.max_messages,
                )
            except Exception as error:
                context.log.error(f"Ingestion of {name} failed: {type(error).__name__}: {error}")
                failures.append(name)
                continue
            yield dg.MaterializeResult(asset_key=key, metadata=materialization_metadata(result))
            check_key = dg.AssetCheckKey(key, naming.MAX_LAG_CHECK_NAME)
            if key in thresholds and check_key in selected_checks:
                threshold = thresholds[key]
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name=naming.MAX_LAG_CHECK_NAME,
                    passed=int(result.lag_left) <= threshold,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"lag_left": int(result.lag_left), "max_lag_messages": threshold},
                )
        if failures:
            raise dg.Failure(
                f"Ingestion failed for {len(failures)} table(s): {', '.join(failures)}",
                metadata={"failed_tables": failures},
            )

    return ingest_tables
