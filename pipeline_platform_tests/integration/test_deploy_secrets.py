"""No password literal in the deployment files, and the detector that finds them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline_platform_tests.integration.deploy_files import (
    COMPOSE_PATH,
    DEPLOY,
    REPO_ROOT,
    SECRET_KEY,
    VALUES_PATH,
    literal_secrets,
)


@pytest.mark.parametrize(
    "path",
    [VALUES_PATH, COMPOSE_PATH, REPO_ROOT / "dagster.yaml", DEPLOY / ".env.example"],
    ids=lambda path: path.name,
)
def test_no_password_literal(path: Path) -> None:
    text = path.read_text()
    if path.suffix in {".yaml", ".yml"}:
        assert literal_secrets(yaml.safe_load(text)) == []
    # No user:password@ in a URL unless the password is a ${...} substitution.
    for match in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert match.group(2).startswith("${"), match.group(0)
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, value = stripped.partition("=")
        if SECRET_KEY.search(name):
            assert value == "", f"{path.name}: {name} has a value"


def test_literal_secret_detector_catches_literals() -> None:
    assert literal_secrets({"postgresql": {"postgresqlPassword": "hunter2"}}) == [
        ".postgresql.postgresqlPassword"
    ]
    assert literal_secrets({"env": {"DAGSTER_PG_PASSWORD": "${POSTGRES_PASSWORD}"}}) == []
    assert literal_secrets({"global": {"postgresqlSecretName": "dagster-pg"}}) == []
    assert literal_secrets({"generatePostgresqlPasswordSecret": False}) == []
    assert literal_secrets({"x": [{"KAFKA_SASL_PASSWORD": 1234}]}) == [".x[0].KAFKA_SASL_PASSWORD"]
