"""Start ``pipeline-platform serve`` in its own process for tests over real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pipeline_platform_tests.servers import free_port, wait_for_port


@contextmanager
def api_server(env: Mapping[str, str]) -> Iterator[str]:
    """Run the API server with ``env``; yield its base URL; stop it (by its own pid)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "pipeline_platform.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
        except TimeoutError:
            if process.poll() is not None:
                stderr = process.communicate()[1][-2000:]
                raise RuntimeError(f"API server exited: {stderr}") from None
            raise
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
