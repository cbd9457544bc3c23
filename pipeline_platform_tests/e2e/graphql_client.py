"""GraphQL client helpers for a Dagster webserver: queries, readiness and polling."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class GraphQLError(RuntimeError):
    """The GraphQL API answered with errors."""


def graphql(
    url: str, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Post a GraphQL query to ``<url>/graphql`` and return its ``data``.

    Args:
        url: Base URL of the webserver (``http://127.0.0.1:3000``).
        query: The GraphQL document.
        variables: Its variables.
        timeout: Seconds to wait for the answer.

    Raises:
        GraphQLError: When the answer carries ``errors``.
    """
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise GraphQLError(json.dumps(answer["errors"])[:2000])
    return dict(answer["data"])


def wait_for_graphql(
    url: str, timeout: float = 120.0, process: subprocess.Popen[Any] | None = None
) -> str:
    """Wait until the webserver's GraphQL API answers and the code location has loaded.

    Args:
        url: Base URL of the webserver.
        timeout: Seconds to wait.
        process: The server process; waiting stops early when it exits.

    Returns:
        The Dagster version the server reports.

    Raises:
        TimeoutError: When the API does not answer in time.
        RuntimeError: When ``process`` exits first or the code location fails to load.
    """
    query = """
    { version
      workspaceOrError { __typename ... on Workspace { locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      } } } }
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} while starting")
        try:
            data = graphql(url, query, timeout=10)
        except (OSError, urllib.error.URLError, GraphQLError, ValueError) as error:
            last = error
            time.sleep(0.5)
            continue
        entries = data["workspaceOrError"].get("locationEntries") or []
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if entries and len(loaded) == len(entries):
            for entry in entries:
                located = entry["locationOrLoadError"] or {}
                if located.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location {entry['name']}: {located['message']}")
            return str(data["version"])
        last = entries
        time.sleep(0.5)
    raise TimeoutError(f"{url} GraphQL not ready within {timeout} s (last: {last!r})")


def poll(
    probe: Callable[[], T | None], timeout: float, interval: float = 2.0, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy and return that.

    Raises:
        TimeoutError: When ``probe`` stays falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


RUNS_QUERY = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
    ... on PythonError { message }
  }
}
"""


def runs(
    url: str,
    statuses: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return runs (``runId``, ``status``, ``jobName``, ``tags`` as a dict) matching the filter."""
    run_filter: dict[str, Any] = {}
    if statuses:
        run_filter["statuses"] = list(statuses)
    if tags:
        run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    data = graphql(url, RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
    if data["__typename"] != "Runs":
        raise GraphQLError(str(data))
    return [
        {**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}
        for run in data["results"]
    ]


MATERIALIZATIONS_QUERY = """
query Materializations($key: AssetKeyInput!, $limit: Int) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(limit: $limit) {
        runId
        timestamp
        metadataEntries {
          label
          __typename
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""


def materializations(url: str, key: Sequence[str], limit: int = 20) -> list[dict[str, Any]]:
    """Return the latest materializations of an asset with their metadata as a dict."""
    data = graphql(url, MATERIALIZATIONS_QUERY, {"key": {"path": list(key)}, "limit": limit})
    asset = data["assetOrError"]
    if asset["__typename"] != "Asset":
        return []
    found = []
    for event in asset["assetMaterializations"]:
        metadata: dict[str, Any] = {}
        for entry in event["metadataEntries"]:
            for field in ("intValue", "floatValue", "text"):
                if field in entry:
                    metadata[entry["label"]] = entry[field]
        found.append(
            {"runId": event["runId"], "timestamp": event["timestamp"], "metadata": metadata}
        )
    return found


SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name
      sensorState { status ticks(limit: 20) { status skipReason runIds error { message } } }
    }
    ... on PythonError { message }
  }
}
"""


def sensor_state(
    url: str,
    sensor_name: str,
    repository_name: str = "__repository__",
    location_name: str = "pipeline_platform.definitions",
) -> dict[str, Any]:
    """Return a sensor's status and latest ticks (``sensorState``)."""
    selector = {
        "repositoryLocationName": location_name,
        "repositoryName": repository_name,
        "sensorName": sensor_name,
    }
    data = graphql(url, SENSOR_QUERY, {"selector": selector})["sensorOrError"]
    if data["__typename"] != "Sensor":
        raise GraphQLError(str(data))
    return dict(data["sensorState"])
