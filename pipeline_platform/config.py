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
    """

    registry_url: str
    warehouse_url: str
    kafka_bootstrap_servers: str
    kafka_settings: Mapping[str, str] = field(default_factory=dict)
    state_dir: Path = Path(".")

    def kafka_config(self) -> dict[str, str]:
        """Return the librdkafka configuration (bootstrap servers plus ``KAFKA_*`` settings)."""
        return {"bootstrap.servers": self.kafka_bootstrap_servers, **self.kafka_settings}


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Return the directory for local state: ``DAGSTER_HOME`` or the working directory."""
    env = os.environ if environ is None else environ
    home = env.get("DAGSTER_HOME")
    return Path(home) if home else Path.cwd()


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
    )


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (``PIPELINE_ALERT_*``); every target is optional.

    The webhook URL and the SMTP URL carry secrets (a token, a password): they are kept out of
    ``repr`` and must never be logged or put in an error message.

    Attributes:
        webhook_url: ``PIPELINE_ALERT_WEBHOOK_URL``: a Slack-compatible incoming webhook.
        smtp_url: ``PIPELINE_ALERT_SMTP_URL``: ``smtp://user:password@host:port`` (STARTTLS
            when the server offers it) or ``smtps://...`` (TLS from the start).
        email_to: ``PIPELINE_ALERT_EMAIL_TO``: comma-separated recipients.
        email_from: ``PIPELINE_ALERT_EMAIL_FROM``; ``pipeline-platform@localhost`` by default.
        dagster_url: ``PIPELINE_DAGSTER_URL``: the Dagster UI, for links in alerts.
    """

    webhook_url: str | None = field(default=None, repr=False)
    smtp_url: str | None = field(default=None, repr=False)
    email_to: tuple[str, ...] = ()
    email_from: str = "pipeline-platform@localhost"
    dagster_url: str | None = None

    @property
    def email_enabled(self) -> bool:
        """Whether e-mail alerts are configured (an SMTP URL and at least one recipient)."""
        return bool(self.smtp_url and self.email_to)

    @property
    def enabled(self) -> bool:
        """Whether any alert target is configured."""
        return bool(self.webhook_url) or self.email_enabled

    def secrets(self) -> tuple[str, ...]:
        """Return the values that must never appear in logs or errors (URLs, the password)."""
        from urllib.parse import urlsplit

        values = [v for v in (self.webhook_url, self.smtp_url) if v]
        if self.smtp_url:
            password = urlsplit(self.smtp_url).password
            if password:
                values.append(password)
        return tuple(values)


def load_alert_settings(environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Read the alert settings from ``environ`` (default: the process environment).

    Args:
        environ: Environment mapping to read; ``os.environ`` when omitted.

    Returns:
        The settings; ``enabled`` is False when no target is set (alerts are off).
    """
    env = os.environ if environ is None else environ
    recipients = tuple(
        part.strip() for part in (env.get("PIPELINE_ALERT_EMAIL_TO") or "").split(",")
    )
    dagster_url = (env.get("PIPELINE_DAGSTER_URL") or "").strip().rstrip("/")
    return AlertSettings(
        webhook_url=(env.get("PIPELINE_ALERT_WEBHOOK_URL") or "").strip() or None,
        smtp_url=(env.get("PIPELINE_ALERT_SMTP_URL") or "").strip() or None,
        email_to=tuple(r for r in recipients if r),
        email_from=(env.get("PIPELINE_ALERT_EMAIL_FROM") or "").strip() or AlertSettings.email_from,
        dagster_url=dagster_url or None,
    )
