"""Runtime settings from the environment (spec §3), read in one place and only when asked.

Every environment variable the platform reads is a field of :class:`EnvironmentSettings`, a
typed pydantic model whose aliases are the variable names: :func:`read_environment` validates
them all at once and refuses a bad value with :class:`SettingsError`, one line naming the
variable and the reason. The README's configuration table is generated from the model
(:func:`configuration_table`) and checked against it by a test.

The exceptions, on purpose: variables *named by the registry* (a data source's ``url_env``, a
pipeline's salt variable) are looked up by name through :func:`environment`; ``KAFKA_*``
variables other than ``KAFKA_BOOTSTRAP_SERVERS`` pass through to librdkafka unvalidated; and
``pipeline-platform dev`` (``dev/stack.py``) *sets* variables for the processes it starts.

Nothing here reads the environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from pipeline_platform import config_checks as checks

DEFAULT_BOOTSTRAP_SERVERS = "localhost:9092"
DEFAULT_LOCATION_NAME = "pipeline_platform"

# KAFKA_* variables that are not librdkafka settings.
_NON_LIBRDKAFKA_KAFKA_VARS = frozenset({"KAFKA_BOOTSTRAP_SERVERS"})


class SettingsError(ValueError):
    """An environment variable holds a value the platform refuses (the message names it)."""


def _env(name: str, default: Any, meaning: str, shown: str | None = None, **rules: Any) -> Any:
    """A field read from variable ``name``; ``shown`` is the README's default column."""
    extra: dict[str, Any] = {"shown_default": shown if shown is not None else f"`{default}`"}
    return Field(default, alias=name, description=meaning, json_schema_extra=extra, **rules)


class EnvironmentSettings(BaseModel):
    """Every environment variable the platform reads, typed (aliases are the variable names)."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    dagster_home: Annotated[Path, AfterValidator(checks.directory)] | None = _env(
        "DAGSTER_HOME",
        None,
        "Dagster instance directory; local state (default SQLite files) lives there",
        "the working directory",
    )
    registry_url: checks.DatabaseUrl | None = _env(
        "PIPELINE_REGISTRY_URL",
        None,
        "SQLAlchemy URL of the registry",
        "SQLite file under `DAGSTER_HOME` (or the working directory)",
    )
    warehouse_url: checks.DatabaseUrl | None = _env(
        "PIPELINE_WAREHOUSE_URL",
        None,
        "URL of the `warehouse` data source",
        "SQLite file beside the registry",
    )
    registry_file: Annotated[Path, AfterValidator(checks.file)] | None = _env(
        "PIPELINE_REGISTRY_FILE",
        None,
        "registry YAML file read instead of the registry database (development, tests)",
        "none",
    )
    kafka_bootstrap_servers: Annotated[str, AfterValidator(checks.brokers)] = _env(
        "KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP_SERVERS, "Kafka brokers", min_length=1
    )
    kafka_sensor_running: checks.Flag = _env(
        "PIPELINE_KAFKA_SENSOR_RUNNING", False, "Kafka lag sensors start running"
    )
    kafka_sensor_shards: int = _env(
        "PIPELINE_KAFKA_SENSOR_SHARDS", 1, "number of Kafka lag sensors", ge=1
    )
    kafka_sensor_interval: int = _env(
        "PIPELINE_KAFKA_SENSOR_INTERVAL", 30, "seconds between Kafka lag sensor ticks", ge=1
    )
    kafka_sensor_max_runs: int = _env(
        "PIPELINE_KAFKA_SENSOR_MAX_RUNS", 8, "most ingestion runs one sensor tick requests", ge=1
    )
    ingest_run_max_tables: int = _env(
        "PIPELINE_INGEST_RUN_MAX_TABLES",
        50,
        "most tables sharing one ingestion run (1: a run per table)",
        ge=1,
    )
    ingest_run_max_messages: int = _env(
        "PIPELINE_INGEST_RUN_MAX_MESSAGES",
        100_000,
        "message budget of a shared ingestion run; a table lagging by more runs alone",
        ge=1,
    )
    ingest_max_messages: int = _env(
        "PIPELINE_INGEST_MAX_MESSAGES",
        1_000_000,
        "most messages a run ingests per table (0: no cap)",
        ge=0,
    )
    reload_sensor_running: checks.Flag = _env(
        "PIPELINE_RELOAD_SENSOR_RUNNING", True, "the registry reload sensor starts running"
    )
    reload_sensor_interval: int = _env(
        "PIPELINE_RELOAD_SENSOR_INTERVAL", 10, "seconds between reload sensor ticks", ge=1
    )
    flow_job_budget: int = _env(
        "PIPELINE_FLOW_JOB_BUDGET",
        50_000,
        "most (flow jobs × assets) for which flows get jobs",
        ge=0,
    )
    pipeline_job_budget: int = _env(
        "PIPELINE_PIPELINE_JOB_BUDGET",
        50_000,
        "most (table pipelines × assets) for which each pipeline gets its own job",
        ge=0,
    )
    pipelines_first_run: checks.Flag = _env(
        "PIPELINE_PIPELINES_FIRST_RUN",
        False,
        "a sensor runs each active batch table pipeline once when its sources have data",
    )
    webserver_host: Annotated[str, AfterValidator(checks.host)] = _env(
        "PIPELINE_DAGSTER_WEBSERVER_HOST",
        "localhost",
        "Dagster webserver the reload sensor and the API reload through",
        min_length=1,
    )
    webserver_port: int = _env(
        "PIPELINE_DAGSTER_WEBSERVER_PORT", 3000, "port of that webserver", ge=1, le=65535
    )
    location_name: Annotated[str, AfterValidator(checks.word)] | None = _env(
        "PIPELINE_DAGSTER_LOCATION_NAME",
        None,
        "code location name to reload",
        f"the sensor's own location (`{DEFAULT_LOCATION_NAME}`); the API: every location",
    )
    api_token: Annotated[SecretStr, AfterValidator(checks.token)] | None = _env(
        "PIPELINE_API_TOKEN", None, "bearer token of the API's POST routes", "none (refused)"
    )
    api_read_token: Annotated[SecretStr, AfterValidator(checks.token)] | None = _env(
        "PIPELINE_API_READ_TOKEN", None, "bearer token of the API's read routes", "none (open)"
    )
    api_cors_origins: Annotated[
        tuple[str, ...], BeforeValidator(checks.comma_list), AfterValidator(checks.cors_origins)
    ] = _env(
        "PIPELINE_API_CORS_ORIGINS",
        (),
        "comma-separated origins allowed by CORS (`*` for any)",
        "none",
    )
    alert_webhook_url: Annotated[SecretStr, AfterValidator(checks.secret_http_url)] | None = _env(
        "PIPELINE_ALERT_WEBHOOK_URL",
        None,
        'Slack-compatible incoming webhook for alerts (`{"text": ...}`)',
        "unset: no webhook",
    )
    alert_smtp_url: Annotated[SecretStr, AfterValidator(checks.smtp_url)] | None = _env(
        "PIPELINE_ALERT_SMTP_URL",
        None,
        "`smtp://user:password@host:port` (STARTTLS when offered; the password only over TLS"
        " unless on localhost) or `smtps://...`; certificates verified (`SSL_CERT_FILE`)",
        "unset: no e-mail",
    )
    alert_email_to: Annotated[
        tuple[str, ...],
        BeforeValidator(checks.comma_list),
        AfterValidator(checks.email_addresses),
    ] = _env(
        "PIPELINE_ALERT_EMAIL_TO",
        (),
        "comma-separated alert recipients (with the SMTP URL)",
        "unset: no e-mail",
    )
    alert_email_from: Annotated[str, AfterValidator(checks.email_address)] = _env(
        "PIPELINE_ALERT_EMAIL_FROM", "pipeline-platform@localhost", "sender of alert e-mails"
    )
    dagster_url: Annotated[str, AfterValidator(checks.http_url)] | None = _env(
        "PIPELINE_DAGSTER_URL",
        None,
        "Dagster UI address, for run and asset links in alerts",
        "unset: no links",
    )

    @classmethod
    def variable(cls, field_name: str) -> str:
        """Return the environment variable of a field (``registry_url`` → its variable)."""
        alias = cls.model_fields[field_name].alias
        assert alias is not None
        return alias


DEFAULTS = EnvironmentSettings()
"""The value of every setting when its variable is unset (built without reading anything)."""


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """Return ``environ``, or the process environment when None.

    For variables the registry names (a data source's ``url_env``): every other variable is
    read through :func:`read_environment`.
    """
    return os.environ if environ is None else environ


def read_environment(environ: Mapping[str, str] | None = None) -> EnvironmentSettings:
    """Validate every variable of :class:`EnvironmentSettings` (empty values count as unset).

    Args:
        environ: Environment mapping to read; the process environment when omitted.

    Raises:
        SettingsError: ``PIPELINE_X: reason`` for each refused value, on one line.
    """
    env = environment(environ)
    names = {info.alias for info in EnvironmentSettings.model_fields.values()}
    values = {name: env[name] for name in names if name is not None and env.get(name)}
    try:
        return EnvironmentSettings.model_validate(values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"][:1])
            reason = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {reason} (got {values.get(name, '')!r})")
        raise SettingsError("; ".join(_redact(problems, values))) from None


def _redact(problems: list[str], values: Mapping[str, str]) -> list[str]:
    # Tokens and URLs may carry secrets: never echo their values.
    secret = {"PIPELINE_API_TOKEN", "PIPELINE_API_READ_TOKEN"}
    out = []
    for line in problems:
        name = line.split(":", 1)[0]
        if name in secret or name.endswith("_URL"):
            line = line.rsplit(" (got ", 1)[0]
        out.append(line)
    return out


def configuration_table() -> str:
    """Return the README's configuration table (Markdown), generated from the model."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for info in EnvironmentSettings.model_fields.values():
        extra = info.json_schema_extra
        shown = extra.get("shown_default") if isinstance(extra, dict) else None
        rows.append(f"| `{info.alias}` | {info.description} | {shown} |")
    rows.append(
        "| `KAFKA_*` | further librdkafka settings "
        "(`KAFKA_SECURITY_PROTOCOL` → `security.protocol`) | none |"
    )
    return "\n".join(rows)


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
        registry_file: Registry YAML file read instead of the registry database
            (``PIPELINE_REGISTRY_FILE``; development and tests), or None.
    """

    registry_url: str
    warehouse_url: str
    kafka_bootstrap_servers: str
    kafka_settings: Mapping[str, str] = field(default_factory=dict)
    state_dir: Path = Path(".")
    registry_file: Path | None = None

    def kafka_config(self) -> dict[str, str]:
        """Return the librdkafka configuration (bootstrap servers plus ``KAFKA_*`` settings)."""
        return {"bootstrap.servers": self.kafka_bootstrap_servers, **self.kafka_settings}


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Return the directory for local state: ``DAGSTER_HOME`` or the working directory."""
    home = read_environment(environ).dagster_home
    return home if home is not None else Path.cwd()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings of spec §3 from ``environ`` (default: the process environment).

    Args:
        environ: Environment mapping to read; ``os.environ`` when omitted.

    Returns:
        The resolved settings, with the embedded SQLite defaults filled in.

    Raises:
        SettingsError: when a variable holds a bad value.
    """
    env = environment(environ)
    values = read_environment(env)
    state = values.dagster_home if values.dagster_home is not None else Path.cwd()
    kafka_settings = {
        key[len("KAFKA_") :].lower().replace("_", "."): value
        for key, value in env.items()
        if key.startswith("KAFKA_") and key not in _NON_LIBRDKAFKA_KAFKA_VARS
    }
    return Settings(
        registry_url=values.registry_url or f"sqlite:///{state / 'registry.db'}",
        warehouse_url=values.warehouse_url or f"sqlite:///{state / 'warehouse.db'}",
        kafka_bootstrap_servers=values.kafka_bootstrap_servers,
        kafka_settings=kafka_settings,
        state_dir=state,
        registry_file=values.registry_file,
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

    Raises:
        SettingsError: when a variable holds a bad value.
    """
    values = read_environment(environ)
    webhook, smtp = values.alert_webhook_url, values.alert_smtp_url
    return AlertSettings(
        webhook_url=webhook.get_secret_value() if webhook else None,
        smtp_url=smtp.get_secret_value() if smtp else None,
        email_to=values.alert_email_to,
        email_from=values.alert_email_from,
        dagster_url=values.dagster_url.rstrip("/") if values.dagster_url else None,
    )
