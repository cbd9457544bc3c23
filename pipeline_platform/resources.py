"""Dagster resources: the registry, the warehouse and Kafka.

Resource configuration never holds a secret: URLs and broker addresses are given as
``dg.EnvVar`` references (resolved in the process that uses them) or left unset, in which case
the settings of :func:`pipeline_platform.config.load_settings` apply at run time. Further
librdkafka settings (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_PASSWORD``...) are read from the
environment only when a client is built, so they never reach run config, metadata or logs.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from pipeline_platform.config import environment, load_settings
from pipeline_platform.registry.document import DEFAULT_DATA_SOURCE, DataSource


class RegistryResource(dg.ConfigurableResource):
    """Where the registry database is."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; unset = PIPELINE_REGISTRY_URL or the default.",
    )

    def resolved_url(self) -> str:
        """Return the registry URL (configured, else from the settings)."""
        return self.url or load_settings().registry_url


class WarehouseResource(dg.ConfigurableResource):
    """Where ingested tables are written: the ``warehouse`` data source and named others."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the warehouse; unset = PIPELINE_WAREHOUSE_URL or default.",
    )

    def url_for(self, data_source_name: str, data_source: DataSource | None = None) -> str:
        """Return the database URL of a data source.

        Args:
            data_source_name: The table's data source name.
            data_source: The registry record of the data source, if the registry has one.

        Returns:
            The URL: the warehouse URL for ``warehouse``, else the value of the data source's
            ``url_env`` variable.

        Raises:
            dagster.Failure: When the data source's variable is not set.
        """
        if data_source_name == DEFAULT_DATA_SOURCE and (
            data_source is None or not environment().get(data_source.url_env)
        ):
            return self.url or load_settings().warehouse_url
        if data_source is None:
            raise dg.Failure(f"Data source {data_source_name!r} is not in the registry")
        value = environment().get(data_source.url_env)
        if not value:
            raise dg.Failure(
                f"Data source {data_source_name!r}: environment variable "
                f"{data_source.url_env} is not set"
            )
        return value


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the topics live on."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="Brokers; unset = KAFKA_BOOTSTRAP_SERVERS or localhost:9092.",
    )

    def client_config(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the librdkafka configuration, with ``KAFKA_*`` settings read now.

        Args:
            environ: Environment to read; the process environment when omitted.

        Returns:
            ``bootstrap.servers`` plus the further settings. Never log this: it may hold secrets.
        """
        config = load_settings(environ).kafka_config()
        if self.bootstrap_servers:
            config["bootstrap.servers"] = self.bootstrap_servers
        return config

    def describe(self) -> str:
        """Return the brokers, for messages (no credentials)."""
        return self.bootstrap_servers or load_settings().kafka_bootstrap_servers


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Return the resources of the code location, referencing variables set at load time.

    Args:
        environ: Environment to inspect (only whether variables are set); the process
            environment by default.

    Returns:
        ``registry``, ``warehouse`` and ``kafka`` resources.
    """
    env = environment(environ)

    def env_var(name: str) -> str | None:
        return dg.EnvVar(name) if env.get(name) else None

    return {
        "registry": RegistryResource(url=env_var("PIPELINE_REGISTRY_URL")),
        "warehouse": WarehouseResource(url=env_var("PIPELINE_WAREHOUSE_URL")),
        "kafka": KafkaResource(bootstrap_servers=env_var("KAFKA_BOOTSTRAP_SERVERS")),
    }
