"""The local stack (``pipeline-platform dev``) in e2e tests: start, shared fixture, Ctrl-C check."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_platform_tests.e2e.graphql_client import wait_for_graphql
from pipeline_platform_tests.e2e.processes import alive, command_line, descendants, wait_gone
from pipeline_platform_tests.servers import create_database, free_port

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
