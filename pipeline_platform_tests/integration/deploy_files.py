"""Deployment test helpers: the deployment files' paths, their parsed YAML and a secret finder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
VALUES_PATH = DEPLOY / "helm" / "values.yaml"
COMPOSE_PATH = DEPLOY / "docker-compose.yaml"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    """The Helm values (``deploy/helm/values.yaml``)."""
    return yaml.safe_load(VALUES_PATH.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The docker compose file (``deploy/docker-compose.yaml``)."""
    return yaml.safe_load(COMPOSE_PATH.read_text())


def user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    """Return the one user deployment (the code location) of the Helm values."""
    deployments = values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    return deployments[0]


SECRET_KEY = re.compile(r"(password|secret|token|passwd)", re.IGNORECASE)


def literal_secrets(node: Any, path: str = "") -> list[str]:
    """Paths of secret-looking keys whose value is a literal (not a reference or ${VAR})."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, item in node.items():
            child = f"{path}.{key}"
            is_scalar = isinstance(item, (str, int)) and not isinstance(item, bool)
            if SECRET_KEY.search(str(key)) and is_scalar:
                value = str(item)
                is_reference = value.startswith("${") or str(key).endswith(("SecretName",))
                if value and not is_reference:
                    found.append(child)
            found.extend(literal_secrets(item, child))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(literal_secrets(item, f"{path}[{index}]"))
    return found
