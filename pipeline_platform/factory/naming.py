"""Names the factory gives to Dagster objects (spec §4 naming contract).

Every Dagster name derived from a registry value goes through this module, so the naming
contract lives in one place: asset keys, group names, job names, run tags.
"""

from __future__ import annotations

import re

import dagster as dg

from pipeline_platform.registry.rules import table_asset_path

KAFKA_PREFIX = "kafka"
API_PREFIX = "api"
DEFAULT_TOPIC_GROUP = "topics"
PLATFORM_GROUP = "pipeline_platform"
REGISTRY_STATUS_KEY = dg.AssetKey(["pipeline_platform", "registry_status"])

INGESTION_JOB_NAME = "ingestion"
INGESTION_OP_NAME = "ingest_tables"
KAFKA_SENSOR_NAME = "kafka_lag_sensor"
RELOAD_SENSOR_NAME = "registry_reload_sensor"

TABLE_TAG = "pipeline_platform/table"
TABLES_TAG = "pipeline_platform/tables"
INGESTION_TAG = "pipeline_platform/ingestion"
TOPIC_TAG = "pipeline_platform/topic"
MAX_LAG_CHECK_NAME = "max_lag_messages"
MAX_LAG_SECONDS_CHECK_NAME = "max_lag_seconds"
DEAD_LETTER_CHECK_NAME = "dead_letter_ratio"
RETENTION_CHECK_NAME = "retention_loss"
ROWS_GROWING_CHECK_NAME = "rows_growing"

_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_]+")


def dagster_name(value: str) -> str:
    """Turn a registry name into a valid Dagster name (``^[A-Za-z0-9_]+$``).

    Args:
        value: A flow or other registry name such as ``audio-processing``.

    Returns:
        The name with every run of other characters replaced by ``_`` (``audio_processing``);
        ``_`` when nothing is left.
    """
    cleaned = _NOT_NAME_CHAR.sub("_", value).strip("_")
    return cleaned or "_"


def topic_key(topic_name: str) -> dg.AssetKey:
    """Return the asset key of a Kafka topic: ``kafka/<topic name>``."""
    return dg.AssetKey([KAFKA_PREFIX, topic_name])


def api_key(path: str) -> dg.AssetKey:
    """Return the asset key of an HTTP endpoint path: ``/audio/upload`` → ``api/audio/upload``."""
    parts = [part for part in path.split("/") if part]
    return dg.AssetKey([API_PREFIX, *(parts or ["_root"])])


def table_key(data_source: str, table: str) -> dg.AssetKey:
    """Return the asset key of an ingested table: ``<data_source>/<table>``."""
    return dg.AssetKey(table_asset_path(data_source, table))


def ingestion_op_name(part: int) -> str:
    """Return the op name of one part of the ingestion multi-asset (part 0: ``ingest_tables``)."""
    return INGESTION_OP_NAME if part == 0 else f"{INGESTION_OP_NAME}_part_{part + 1}"


def flow_job_name(group_name: str) -> str:
    """Return the name of the job of a flow's asset group."""
    return f"flow_{group_name}"


def kafka_sensor_name(shard: int, shards: int) -> str:
    """Return the name of one Kafka lag sensor shard (no suffix when there is one shard)."""
    return KAFKA_SENSOR_NAME if shards <= 1 else f"{KAFKA_SENSOR_NAME}_{shard}_of_{shards}"
