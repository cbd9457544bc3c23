"""Deployment files: Helm values, docker compose, Dockerfile, and a run's Kubernetes Job.

The Job is built offline with dagster-k8s's own ``construct_dagster_k8s_job`` from values read out
of ``deploy/helm/values.yaml``, the way the K8sRunLauncher builds it when a run is launched.
No cluster, Helm binary or Docker engine is needed.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_job_name_from_run_id,
)

from pipeline_platform.factory import naming
from pipeline_platform_tests.integration.deploy_files import (
    DEPLOY,
    REPO_ROOT,
    compose,
    user_deployment,
    values,
)

__all__ = ["compose", "values"]  # the fixtures, imported for this module

TABLE_TAG = naming.TABLE_TAG
DEFINITIONS_MODULE = "pipeline_platform.definitions"


def _run_job(values: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """Build the Job of one ingestion run from the Helm values; return it as a dict."""
    deployment = user_deployment(values)
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s_config = launcher.get("runK8sConfig", {})
    job_config = DagsterK8sJobConfig(
        # With user deployments the run image is the code location's image.
        job_image=image,
        dagster_home=values.get("global", {}).get("dagsterHome", "/opt/dagster/dagster_home"),
        image_pull_policy=launcher["imagePullPolicy"],
        instance_config_map="pipeline-platform-dagster-instance",
        postgres_password_secret=values["global"]["postgresqlSecretName"],
        env_config_maps=[item["name"] for item in launcher.get("envConfigMaps", [])],
        env_secrets=[item["name"] for item in launcher["envSecrets"]],
        labels=launcher["labels"],
        resources=launcher["resources"],
    )
    # The chart writes runK8sConfig into dagster.yaml as `run_k8s_config`, keys unchanged.
    user_defined = UserDefinedDagsterK8sConfig(
        container_config=run_k8s_config.get("containerConfig"),
        pod_spec_config=run_k8s_config.get("podSpecConfig"),
        job_spec_config=run_k8s_config.get("jobSpecConfig"),
        job_metadata=run_k8s_config.get("jobMetadata"),
        pod_template_spec_metadata=run_k8s_config.get("podTemplateSpecMetadata"),
    )
    run_id = str(uuid.uuid4())
    job_name = get_job_name_from_run_id(run_id)
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_run", '{"__class__": "ExecuteRunArgs"}'],
        job_name,
        user_defined_k8s_config=user_defined,
        component="run_worker",
        labels={"dagster/job": "ingest_warehouse", "dagster/run-id": run_id},
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job), image, run_id


# -- Helm values --------------------------------------------------------------------------------


def test_run_job_built_from_helm_values(values: dict[str, Any]) -> None:
    job, image, run_id = _run_job(values)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]

    assert job["kind"] == "Job"
    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == image
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"][:3] == ["dagster", "api", "execute_run"]

    # Credentials only by reference: the env Secret and the storage password Secret.
    assert {"secretRef": {"name": "pipeline-platform-env"}} in container["envFrom"]
    env = {item["name"]: item for item in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "dagster-postgresql-secret",
        "key": "postgresql-password",
    }
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"].endswith(":9092")
    assert all("value" not in item or "PASSWORD" not in name for name, item in env.items())

    assert container["resources"] == launcher["resources"]
    assert container["resources"]["requests"]["cpu"] == "1"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400

    for labels in (job["metadata"]["labels"], pod["metadata"]["labels"]):
        assert labels["app.kubernetes.io/part-of"] == "pipeline-platform"
        assert labels["pipeline-platform/role"] == "run"
        assert labels["app.kubernetes.io/component"] == "run_worker"
        assert labels["dagster/run-id"] == run_id


def test_helm_values_name_the_components(values: dict[str, Any]) -> None:
    webserver = values["dagsterWebserver"]
    assert webserver["enableReadOnly"] is True  # a read-only webserver beside the admin one

    deployment = user_deployment(values)
    assert values["dagster-user-deployments"]["enabled"] is True
    # code-server start (reloadable), not `dagster api grpc`.
    assert deployment["codeServerArgs"] == ["-m", DEFINITIONS_MODULE]
    assert "dagsterApiGrpcArgs" not in deployment
    assert deployment["port"] == 4000
    assert {"name": "pipeline-platform-env"} in deployment["envSecrets"]
    # The reload sensor reloads the location by the name the chart gives it (the deployment's).
    assert deployment["env"]["PIPELINE_DAGSTER_LOCATION_NAME"] == deployment["name"]
    assert deployment["env"]["PIPELINE_DAGSTER_WEBSERVER_HOST"].endswith("-webserver")
    assert deployment["resources"]["requests"]
    assert deployment["labels"]["app.kubernetes.io/part-of"] == "pipeline-platform"
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True

    assert values["runLauncher"]["type"] == "K8sRunLauncher"

    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert {"key": TABLE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert {"key": naming.INGESTION_TAG, "limit": 8} in limits  # the sensor's tag on its runs
    assert daemon["runRetries"]["enabled"] is True
    assert daemon["runRetries"]["maxRetries"] >= 1
    assert daemon["runMonitoring"]["enabled"] is True

    # Storage: an external PostgreSQL whose password lives in a named Secret.
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["telemetry"]["enabled"] is False
    assert values["additionalInstanceConfig"]["freshness"] == {"enabled": True}


def test_helm_and_production_yaml_agree_on_queue_and_retries(values: dict[str, Any]) -> None:
    production = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == production["concurrency"]["runs"]["max_concurrent_runs"]
    assert (
        queue["tagConcurrencyLimits"] == production["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert (
        values["dagsterDaemon"]["runRetries"]["maxRetries"]
        == (production["run_retries"]["max_retries"])
    )


# -- docker compose ---------------------------------------------------------------------------


def test_compose_names_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "timescaledb", "code-location", "webserver", "daemon"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")

    code = services["code-location"]
    assert code["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert code["command"][:3] == ["dagster", "code-server", "start"]
    assert code["command"][-2:] == ["-m", DEFINITIONS_MODULE]
    assert code["env_file"] == [".env"]
    assert code["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert code["environment"]["PIPELINE_REGISTRY_URL"].startswith("postgresql+psycopg://")

    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert "--read-only" in services["webserver-readonly"]["command"]
    assert "--read-only" not in services["webserver"]["command"]
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in ("webserver", "webserver-readonly", "daemon", "code-location"):
        env = services[name]["environment"]
        assert {"DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"} <= set(env)

    workspace = yaml.safe_load((DEPLOY / "workspace.docker.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"]["host"] == "code-location"
    assert entry["grpc_server"]["port"] == 4000
    # The reload sensor (in the code location) reaches the admin webserver by service name.
    env = code["environment"]
    assert env["PIPELINE_DAGSTER_LOCATION_NAME"] == entry["grpc_server"]["location_name"]
    assert env["PIPELINE_DAGSTER_WEBSERVER_HOST"] == "webserver"
    assert env["PIPELINE_DAGSTER_WEBSERVER_PORT"] == services["webserver"]["command"][4]


def test_compose_passes_only_librdkafka_settings_as_kafka_variables() -> None:
    # Every KAFKA_* variable reaching the code location becomes a librdkafka setting.
    example = (DEPLOY / ".env.example").read_text()
    names = re.findall(r"^#?\s*(KAFKA_[A-Z_]+)=", example, flags=re.MULTILINE)
    assert names  # the example documents the secured-cluster settings
    assert all(name.startswith(("KAFKA_SECURITY_", "KAFKA_SASL_", "KAFKA_SSL_")) for name in names)
    assert re.search(r"^POSTGRES_PASSWORD=\s*$", example, flags=re.MULTILINE)


# -- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_runs_the_code_server_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert froms and all(image.startswith("python:3.11-slim") for image in froms)
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, flags=re.MULTILINE)
    cmd = re.search(r"^CMD\s+(\[.*?\])\s*$", text, flags=re.MULTILINE | re.DOTALL)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1).replace("\\\n", " "))
    assert command == [
        "dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", DEFINITIONS_MODULE,
    ]  # fmt: skip
    assert "COPY --chown=dagster:dagster dagster.yaml" in text
    # Files the build copies exist in the repository (the build context is its root).
    for source in ("pyproject.toml", "requirements.lock", "dagster.yaml", "pipeline_platform"):
        assert (REPO_ROOT / source).exists(), source


# -- workspaces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [REPO_ROOT / "workspace.yaml", DEPLOY / "workspace.docker.yaml"],
    ids=lambda path: path.name,
)
def test_workspaces_are_valid_and_name_the_location(path: Path) -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    config = yaml.safe_load(path.read_text())
    ensure_workspace_config(config, str(path))
    (entry,) = config["load_from"]
    (target,) = entry.values()
    assert target["location_name"] == "pipeline_platform"
    if "python_module" in entry:
        assert target["module_name"] == DEFINITIONS_MODULE
