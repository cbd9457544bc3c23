"""Helpers for end-to-end tests against a running Dagster webserver.

- :func:`dagster_dev` starts ``dagster dev`` on a temporary ``DAGSTER_HOME`` and a free port and
  waits until its GraphQL API answers; :func:`wait_for_graphql` does the waiting for any server.
- :func:`graphql` posts a query; :func:`runs`, :func:`materializations` and :func:`sensor_ticks`
  wrap the queries the tests need.
- :func:`descendants`, :func:`alive` and :func:`wait_gone` inspect processes through ``/proc``
  (psutil is not a dependency).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipeline_platform_tests.servers import create_database, free_port

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


# -- processes ------------------------------------------------------------------------------


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> set[int]:
    """Return the ids of every living descendant of ``pid`` (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: Sequence[int] | set[int], timeout: float = 30.0) -> set[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    left = {pid for pid in pids if alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {pid for pid in left if alive(pid)}
    return left


def command_line(pid: int) -> str:
    """Return the command line of ``pid`` (empty when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# -- dagster dev ------------------------------------------------------------------------------


@dataclass
class DagsterDev:
    """A running ``dagster dev``.

    Attributes:
        process: The ``dagster dev`` process (leader of its own process group).
        url: Base URL of its webserver.
        home: Its ``DAGSTER_HOME``.
        log_path: File with its stdout and stderr.
    """

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        """Return the end of the server log (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> None:
        """Send SIGINT (Ctrl-C), wait, then kill what is left of its process group."""
        stop_group(self.process, timeout)


def stop_group(process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Interrupt a process started in its own session, then kill whatever stays in its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def dagster_dev(
    home: Path,
    module: str = "pipeline_platform.definitions",
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> Iterator[DagsterDev]:
    """Start ``dagster dev -m module`` on ``home`` and a free port; yield once GraphQL answers.

    Args:
        home: ``DAGSTER_HOME`` (created when missing; a ``dagster.yaml`` there is used).
        module: The code location module.
        env: Extra environment variables.
        timeout: Seconds to wait for the webserver and the code location.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home / "dagster-dev.log"
    environ = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "dagster", "dev", "-m", module, "-h", "127.0.0.1"]
    command.extend(["-p", str(port)])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(process, f"http://127.0.0.1:{port}", home, log_path)
    try:
        try:
            wait_for_graphql(server.url, timeout=timeout, process=process)
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(f"{error}\n--- dagster dev log ---\n{server.log_tail()}") from error
        yield server
    finally:
        server.stop()


# -- the local stack (`pipeline-platform dev`) ------------------------------------------------

_PID_LINE = re.compile(r"^(local broker at \S+|dagster dev on \S+|API on (\S+)) \(pid (\d+)")


@dataclass
class DevStack:
    """A running ``pipeline-platform dev`` (leader of its own session).

    Attributes:
        process: The ``pipeline-platform dev`` process.
        url: Base URL of the webserver.
        home: Its ``DAGSTER_HOME``.
        log_path: Its combined output.
        warehouse_url: The warehouse database URL it writes to.
    """

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    log_path: Path
    warehouse_url: str

    def log_tail(self, chars: int = 6000) -> str:
        """Return the end of the stack's output (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def child_pids(self) -> dict[str, int]:
        """Return the pids the stack reported: ``{"broker", "dagster", "api"}`` → pid."""
        found: dict[str, int] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _PID_LINE.match(line)
            if match:
                name = line.split(" ", 1)[0].replace("local", "broker")
                found[{"broker": "broker", "dagster": "dagster", "API": "api"}[name]] = int(
                    match.group(3)
                )
        return found

    def api_url(self) -> str:
        """Return the base URL of the platform API the stack started."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _PID_LINE.match(line)
            if match and match.group(2):
                return match.group(2)
        raise LookupError("the stack did not report its API")

    def interrupt(self, timeout: float = 150.0) -> tuple[int | None, set[int]]:
        """Send one SIGINT (Ctrl-C) to the dev process and wait for it and its children.

        Returns:
            The dev process's exit code (None if it did not exit) and the pids still alive
            among everything it had started (its descendants and the reported children).
        """
        started = descendants(self.process.pid) | set(self.child_pids().values())
        self.process.send_signal(signal.SIGINT)
        try:
            code: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, wait_gone(started, timeout=15)

    def kill(self) -> None:
        """Kill whatever is left (cleanup after a failed test)."""
        for pid in descendants(self.process.pid) | set(self.child_pids().values()):
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(ProcessLookupError):
            self.process.kill()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_dev_stack(
    home: Path,
    warehouse_url: str,
    *,
    events_per_second: float = 300.0,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> DevStack:
    """Start ``pipeline-platform dev`` on ``home`` and a free port; return once GraphQL answers.

    The registry is a SQLite file in ``home``; the broker address points at a closed port so the
    stack starts its own local broker.

    Args:
        home: ``DAGSTER_HOME`` of the stack.
        warehouse_url: ``PIPELINE_WAREHOUSE_URL``.
        events_per_second: Demo event rate.
        env: Extra environment variables.
        timeout: Seconds to wait for the webserver and the code location.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home / "pipeline-platform-dev.log"
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ANALYTICS_DB_URL", "APP_DB_URL") and not key.startswith("KAFKA_")
    }
    environ.update(
        {
            "DAGSTER_HOME": str(home),
            "PIPELINE_REGISTRY_URL": f"sqlite:///{home / 'registry.db'}",
            "PIPELINE_WAREHOUSE_URL": warehouse_url,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
    )
    script = Path(sys.executable).with_name("pipeline-platform")
    command = (
        [str(script)] if script.exists() else [sys.executable, "-m", "pipeline_platform.cli.main"]
    )
    command += ["dev", "--home", str(home), "--port", str(port), "--api-port", str(free_port())]
    command += ["--events-per-second", f"{events_per_second:g}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack = DevStack(process, f"http://127.0.0.1:{port}", home, log_path, warehouse_url)
    try:
        wait_for_graphql(stack.url, timeout=timeout, process=process)
    except (TimeoutError, RuntimeError) as error:
        stack.kill()
        raise RuntimeError(f"{error}\n--- pipeline-platform dev ---\n{stack.log_tail()}") from error
    return stack


# -- one stack shared by the e2e modules that import this fixture ------------------------------

_SHARED: dict[str, Any] = {"stack": None, "users": 0}


@pytest.fixture(scope="session")
def dev_stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str
) -> Iterator[DevStack]:
    """A ``pipeline-platform dev`` stack (PostgreSQL warehouse) shared by every module using it.

    Imported into several test modules, pytest makes one fixture per module; they share one
    stack through a module-level reference count, and the last user stops it the way a user
    does, with one Ctrl-C (SIGINT) to the dev process, and asserts that the dev process exits
    with 0 and that the broker, ``dagster dev`` and every other process it started are gone
    (a failure there is reported as an error in the teardown of the last test using it).
    """
    if _SHARED["stack"] is None:
        home = tmp_path_factory.mktemp("dev-stack")
        _SHARED["stack"] = start_dev_stack(
            home, create_database(postgres_admin_url, prefix="devstack")
        )
    _SHARED["users"] += 1
    stack: DevStack = _SHARED["stack"]
    try:
        yield stack
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _SHARED["stack"] = None
            assert_ctrl_c_stops_everything(stack)


def assert_ctrl_c_stops_everything(stack: DevStack) -> None:
    """Interrupt the stack once and assert that it and everything it started have exited."""
    children = stack.child_pids()
    try:
        assert set(children) == {"broker", "dagster", "api"}, (
            f"pids not reported: {stack.log_tail()}"
        )
        assert all(alive(pid) for pid in children.values()), f"a child died early: {children}"
        started = time.monotonic()
        code, left = stack.interrupt()
        seconds = time.monotonic() - started
        assert code == 0, f"exit code {code} after Ctrl-C\n{stack.log_tail()}"
        assert not left, f"still running after Ctrl-C: {[(pid, command_line(pid)) for pid in left]}"
        assert "local stack stopped" in stack.log_tail(), stack.log_tail()
        assert seconds < 120, f"Ctrl-C took {seconds:.0f} s"
    finally:
        stack.kill()
