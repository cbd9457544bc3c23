"""``dagster dev`` for e2e tests: started on a temporary home and a free port, then stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline_platform_tests.e2e.graphql_client import wait_for_graphql
from pipeline_platform_tests.e2e.processes import stop_group
from pipeline_platform_tests.servers import free_port


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
