"""Real servers for tests: a private PostgreSQL cluster started from Debian's binaries.

Set ``PIPELINE_TEST_POSTGRES_URL`` to use a server you already run; otherwise a private cluster is
initialized in a temporary directory on a free port (as the ``postgres`` user when running as root,
since ``initdb`` refuses root) and stopped at the end of the session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Data directory of each private cluster, by admin URL (for :func:`restart_postgres`).
_DATA_DIRS: dict[str, Path] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """Return the directory that holds ``initdb`` and ``pg_ctl``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: apt-get install postgresql "
            "(or set PIPELINE_TEST_POSTGRES_URL)"
        )
    return Path(candidates[0]).parent


def _as_postgres_user(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def private_postgres() -> Iterator[str]:
    """Start a private PostgreSQL cluster and yield its admin URL (``postgresql+psycopg://``)."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="pp-pg-"))
    data = root / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres", group="postgres")
    run = subprocess.run
    run(
        _as_postgres_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        "-c shared_buffers=256MB"
    )
    run(
        _as_postgres_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    _DATA_DIRS[url] = data
    try:
        yield url
    finally:
        _DATA_DIRS.pop(url, None)
        run(
            _as_postgres_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def restart_postgres(admin_url: str) -> None:
    """Restart a cluster started by :func:`private_postgres` (``pg_ctl restart -m fast``)."""
    data = _DATA_DIRS[admin_url]
    subprocess.run(
        _as_postgres_user(
            [
                str(postgres_bin_dir() / "pg_ctl"),
                "-D",
                str(data),
                "-l",  # the server's output goes to its log, not to our pipe
                str(data.parent / "server.log"),
                "-m",
                "fast",
                "-w",
                "restart",
            ]
        ),
        check=True,
        capture_output=True,
    )


def create_database(admin_url: str, prefix: str = "t") -> str:
    """Create a fresh database on the server of ``admin_url`` and return its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until ``host:port`` accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")
