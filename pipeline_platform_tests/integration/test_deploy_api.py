"""Deployment of the platform API (compose service, Helm extras) and its Grafana dashboard."""

from __future__ import annotations

import re
from typing import Any

import yaml

from pipeline_platform_tests.integration.deploy_files import (
    DEPLOY,
    SECRET_KEY,
    compose,
    literal_secrets,
    user_deployment,
    values,
)

__all__ = ["compose", "values"]  # the fixtures, imported for this module

API_EXTRAS = DEPLOY / "helm" / "extras" / "platform-api.yaml"
DASHBOARD = DEPLOY / "grafana" / "pipeline_platform.json"


def test_compose_runs_the_api(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["command"] == ["pipeline-platform", "serve", "--host", "0.0.0.0", "--port", "8003"]
    assert api["ports"] == ["${PIPELINE_API_HOST_PORT:-8003}:8003"]
    assert api["env_file"] == [".env"]  # PIPELINE_API_TOKEN comes from deploy/.env
    env = api["environment"]
    assert (
        env["PIPELINE_REGISTRY_URL"]
        == compose["services"]["code-location"]["environment"]["PIPELINE_REGISTRY_URL"]
    )
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"} <= set(env)
    assert env["PIPELINE_DAGSTER_WEBSERVER_HOST"] == "webserver"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert not literal_secrets(api)
    example = (DEPLOY / ".env.example").read_text()
    assert re.search(r"^PIPELINE_API_TOKEN=\s*$", example, flags=re.MULTILINE)


def test_helm_extras_deploy_and_expose_the_api(values: dict[str, Any]) -> None:
    documents = list(yaml.safe_load_all(API_EXTRAS.read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"Deployment", "Service"}
    deployment, service = kinds["Deployment"], kinds["Service"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["pipeline-platform", "serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8003}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    image = user_deployment(values)["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert container["envFrom"] == [{"secretRef": {"name": "pipeline-platform-env"}}]
    password = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] == values["global"]["postgresqlSecretName"]
    assert all("value" not in e for e in container["env"] if SECRET_KEY.search(e["name"]))
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["port"] == 8003
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_grafana_dashboard_uses_only_exposed_metrics() -> None:
    import json
    from datetime import UTC, datetime

    from prometheus_client.openmetrics.exposition import generate_latest

    from pipeline_platform.api.metrics import metrics_registry
    from pipeline_platform.ingestion.lag import PartitionLag
    from pipeline_platform.monitoring.dagster_state import RunInfo
    from pipeline_platform.monitoring.state import PlatformState, TableState

    now = datetime.now(UTC)
    state = PlatformState(
        revision=3,
        fingerprint="f",
        registry_up=True,
        tables=(
            TableState(
                topic="t",
                table="x",
                data_source="warehouse",
                partitions={0: PartitionLag(stored=5, end=9)},
                lag_messages=4,
                lag_seconds=2.5,
                last_event_at=now,
                rows_written=10,
                dead_letters_total={"parse": 1},
                last_run=RunInfo("r", "SUCCESS", now, "ingestion"),
            ),
        ),
        job_runs={"ingestion": RunInfo("r", "SUCCESS", now, "ingestion")},
    )

    class Fixed:
        def read(self) -> PlatformState:
            return state

    text = generate_latest(metrics_registry(Fixed())).decode()  # type: ignore[arg-type]
    exposed = set(re.findall(r"^(pipeline_platform_\w+)", text, flags=re.MULTILINE))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"pipeline_platform_\w+", expr)}
    assert used and used <= exposed, used - exposed
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("lag", "rows", "dead letters", "last run"):
        assert subject in titles
