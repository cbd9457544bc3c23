"""Settings in one place: every variable typed, each bad value refused with its name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_platform.api.settings import load_api_settings
from pipeline_platform.config import (
    EnvironmentSettings,
    SettingsError,
    configuration_table,
    load_settings,
    read_environment,
)
from pipeline_platform.factory.builder import FactoryOptions

README = Path(__file__).resolve().parents[2] / "README.md"
PACKAGE = Path(__file__).resolve().parents[2] / "pipeline_platform"

# One bad value per variable, with a word of the reason it is refused for.
BAD = {
    "DAGSTER_HOME": (str(README), "not a directory"),
    "PIPELINE_REGISTRY_URL": ("registry.db", "not a database URL"),
    "PIPELINE_WAREHOUSE_URL": ("://", "not a database URL"),
    "PIPELINE_REGISTRY_FILE": (str(PACKAGE), "is a directory"),
    "KAFKA_BOOTSTRAP_SERVERS": ("broker:ninety", "bad broker address"),
    "PIPELINE_KAFKA_SENSOR_RUNNING": ("maybe", "expected one of"),
    "PIPELINE_KAFKA_SENSOR_SHARDS": ("0", "greater than or equal to 1"),
    "PIPELINE_KAFKA_SENSOR_INTERVAL": ("ten", "valid integer"),
    "PIPELINE_KAFKA_SENSOR_MAX_RUNS": ("-3", "greater than or equal to 1"),
    "PIPELINE_INGEST_MAX_MESSAGES": ("1e6", "valid integer"),
    "PIPELINE_INGEST_RUN_MAX_TABLES": ("0", "greater than or equal to 1"),
    "PIPELINE_INGEST_RUN_MAX_MESSAGES": ("some", "valid integer"),
    "PIPELINE_RELOAD_SENSOR_RUNNING": ("sometimes", "expected one of"),
    "PIPELINE_RELOAD_SENSOR_INTERVAL": ("0", "greater than or equal to 1"),
    "PIPELINE_FLOW_JOB_BUDGET": ("lots", "valid integer"),
    "PIPELINE_PIPELINE_JOB_BUDGET": ("-1", "greater than or equal to 0"),
    "PIPELINE_PIPELINES_FIRST_RUN": ("once", "expected one of"),
    "PIPELINE_DAGSTER_WEBSERVER_HOST": ("http://dagster:3000", "not a URL"),
    "PIPELINE_DAGSTER_WEBSERVER_PORT": ("70000", "less than or equal to 65535"),
    "PIPELINE_DAGSTER_LOCATION_NAME": ("my location", "spaces"),
    "PIPELINE_API_TOKEN": ("secret token", "spaces"),
    "PIPELINE_API_READ_TOKEN": ("tab\there", "spaces"),
    "PIPELINE_API_CORS_ORIGINS": ("ui.example", "bad origin"),
    "PIPELINE_ALERT_WEBHOOK_URL": ("file:///etc/passwd", "http:// or https://"),
    "PIPELINE_ALERT_SMTP_URL": ("mail.example:25", "smtp://"),
    "PIPELINE_ALERT_EMAIL_TO": ("ops@example, oncall", "bad e-mail address"),
    "PIPELINE_ALERT_EMAIL_FROM": ("pipeline platform", "bad e-mail address"),
    "PIPELINE_DAGSTER_URL": ("dagster:3000", "http:// or https://"),
}


def test_every_variable_has_a_bad_value_case() -> None:
    variables = {info.alias for info in EnvironmentSettings.model_fields.values()}
    assert variables == set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_is_refused_with_its_name(name: str) -> None:
    value, reason = BAD[name]
    with pytest.raises(SettingsError) as caught:
        read_environment({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and reason in message
    assert "\n" not in message


def test_secrets_are_not_echoed() -> None:
    for name, value in (
        ("PIPELINE_API_TOKEN", "sec ret"),
        ("PIPELINE_REGISTRY_URL", "hunter2-not-a-url"),
    ):
        with pytest.raises(SettingsError) as caught:
            read_environment({name: value})
        assert value not in str(caught.value)


def test_callers_refuse_bad_values_too() -> None:
    with pytest.raises(SettingsError, match=r"^PIPELINE_FLOW_JOB_BUDGET: "):
        FactoryOptions.from_env({"PIPELINE_FLOW_JOB_BUDGET": "many"})
    with pytest.raises(SettingsError, match=r"^PIPELINE_API_CORS_ORIGINS: "):
        load_api_settings({"PIPELINE_API_CORS_ORIGINS": "example.com"})
    with pytest.raises(SettingsError, match=r"^PIPELINE_REGISTRY_URL: "):
        load_settings({"PIPELINE_REGISTRY_URL": "nonsense"})


def test_good_values_are_typed(tmp_path: Path) -> None:
    options = FactoryOptions.from_env(
        {
            "PIPELINE_KAFKA_SENSOR_RUNNING": "Yes",
            "PIPELINE_RELOAD_SENSOR_RUNNING": "off",
            "PIPELINE_KAFKA_SENSOR_SHARDS": "4",
            "PIPELINE_INGEST_MAX_MESSAGES": "0",
            "PIPELINE_FLOW_JOB_BUDGET": "",  # empty counts as unset
        }
    )
    assert (options.kafka_sensor_running, options.reload_sensor_running) == (True, False)
    assert options.kafka_sensor_shards == 4
    assert options.lag.max_messages_per_run is None
    assert options.flow_job_budget == FactoryOptions().flow_job_budget
    api = load_api_settings(
        {"PIPELINE_API_TOKEN": "w", "PIPELINE_API_CORS_ORIGINS": "http://a:1, https://b"}
    )
    assert api.write_token == "w" and api.cors_origins == ("http://a:1", "https://b")
    settings = load_settings({"DAGSTER_HOME": str(tmp_path), "KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert settings.registry_url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert settings.kafka_config()["security.protocol"] == "SSL"


def test_readme_configuration_table_is_generated_from_the_model() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- configuration table:[^\n]*-->\n(.*?)\n<!-- end of configuration table -->",
        text,
        flags=re.DOTALL,
    )
    assert found is not None
    assert found.group(1) == configuration_table()
    for info in EnvironmentSettings.model_fields.values():
        assert f"`{info.alias}`" in found.group(1)


def test_only_config_reads_the_environment() -> None:
    readers = re.compile(r"os\.environ\.get|getenv\(|os\.environ\[[^\]]+\](?!\s*=)")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "config.py" and path.parent == PACKAGE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if readers.search(line) or re.search(r"os\.environ if environ", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_nothing_is_read_at_import_time() -> None:
    code = (
        "import os; os.environ['PIPELINE_FLOW_JOB_BUDGET'] = 'bad'\n"
        "import pipeline_platform.config, pipeline_platform.factory.builder, "
        "pipeline_platform.api.settings, pipeline_platform.factory.sensors\n"
        "print('imported')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
