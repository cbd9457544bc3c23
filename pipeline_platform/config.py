"""Runtime settings from the environment (spec §3), read in one place and only when asked.

Nothing here reads the environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BOOTSTRAP_SERVERS = "localhost:9092"

# KAFKA_* variables that are not librdkafka settings.
_NON_LIBRDKAFKA_KAFKA_VARS = frozenset({"KAFKA_BOOTSTRAP_SERVERS"})


@dataclass(frozen=True)
class Settings:
    """Where the registry, the warehouse and the brokers are.

    Attributes:
        registry_url: SQLAlchemy URL of the registry database.
        warehouse_url: SQLAlchemy URL of the ``warehouse`` data source.
        kafka_bootstrap_servers: Comma-separated Kafka brokers.
        kafka_settings: Further librdkafka settings taken from ``KAFKA_*`` variables
            (``KAFKA_SECURITY_PROTOCOL`` becomes ``security.protocol``).
        state_dir: Directory for local state (default SQLite files, snapshot cache).
        kafka_sensor_max_runs: Most ingestion runs one Kafka sensor tick requests
            (``PIPELINE_KAFKA_SENSOR_MAX_RUNS``).
        ingest_run_max_tables: Most tables sharing one ingestion run
            (``PIPELINE_INGEST_RUN_MAX_TABLES``; 1 = a run per table).
        ingest_run_max_messages: Message budget of a shared ingestion run; a table lagging by
            at least this many messages gets a run of its own
            (``PIPELINE_INGEST_RUN_MAX_MESSAGES``).
    """

    registry_url: str
    warehouse_url: str
    kafka_bootstrap_servers: str
    kafka_settings: Mapping[str, str] = field(default_factory=dict)
    state_dir: Path = Path(".")
    kafka_sensor_max_runs: int = 8
    ingest_run_max_tables: int = 50
    ingest_run_max_messages: int = 100_000

    def kafka_config(self) -> dict[str, str]:
        """Return the librdkafka configuration (bootstrap servers plus ``KAFKA_*`` settings)."""
        return {"bootstrap.servers": self.kafka_bootstrap_servers, **self.kafka_settings}


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Return the directory for local state: ``DAGSTER_HOME`` or the working directory."""
    env = os.environ if environ is None else environ
    home = env.get("DAGSTER_HOME")
    return Path(home) if home else Path.cwd()


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """Return the positive integer in ``env[name]`` (default when unset or empty).

    Raises:
        ValueError: naming the variable, when the value is not a positive integer.
    """
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return number


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings of spec §3 from ``environ`` (default: the process environment).

    Args:
        environ: Environment mapping to read; ``os.environ`` when omitted.

    Returns:
        The resolved settings, with the embedded SQLite defaults filled in.
    """
    env = os.environ if environ is None else environ
    state = state_directory(env)
    registry_url = env.get("PIPELINE_REGISTRY_URL") or f"sqlite:///{state / 'registry.db'}"
    warehouse_url = env.get("PIPELINE_WAREHOUSE_URL") or f"sqlite:///{state / 'warehouse.db'}"
    kafka_settings = {
        key[len("KAFKA_") :].lower().replace("_", "."): value
        for key, value in env.items()
        if key.startswith("KAFKA_") and key not in _NON_LIBRDKAFKA_KAFKA_VARS
    }
    return Settings(
        registry_url=registry_url,
        warehouse_url=warehouse_url,
        kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS,
        kafka_settings=kafka_settings,
        state_dir=state,
        kafka_sensor_max_runs=_positive_int(env, "PIPELINE_KAFKA_SENSOR_MAX_RUNS", 8),
        ingest_run_max_tables=_positive_int(env, "PIPELINE_INGEST_RUN_MAX_TABLES", 50),
        ingest_run_max_messages=_positive_int(env, "PIPELINE_INGEST_RUN_MAX_MESSAGES", 100_000),
    )
