"""The one-command local stack behind ``pipeline-platform dev``.

Starts a Kafka-protocol broker when none answers, prepares the registry with the demo registry,
keeps producing demo events and runs ``dagster dev`` with the sensors on. Everything it starts is
stopped on Ctrl-C (SIGINT) or SIGTERM: ``dagster dev`` first (it stops its webserver, daemon,
code server and runs), then the producer, then the broker. The broker and ``dagster dev`` run in
their own process groups so that a terminal's Ctrl-C reaches them only through this process, in
that order, and whatever a group leaves behind is terminated with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline_platform.config import Settings, environment, load_settings

if TYPE_CHECKING:
    from pipeline_platform.registry.document import RegistryDocument

log = logging.getLogger(__name__)

DEMO_REGISTRY = "demo_registry.yaml"

#: Environment the dev stack sets (unless already set) for ``dagster dev`` and its children.
DEV_ENVIRONMENT = {
    # The factory reads this flag (factory/builder.py ``FactoryOptions.from_env``).
    "PIPELINE_KAFKA_SENSOR_RUNNING": "1",
    # Ticks every 5 s (the daemon's shortest sensor loop) instead of 30 s: demo events show up
    # in tables within seconds.
    "PIPELINE_KAFKA_SENSOR_INTERVAL": "5",
    # Small runs keep a laptop responsive; the sensor requests the next run for what is left.
    "PIPELINE_INGEST_MAX_MESSAGES": "100000",
    # The local run queue takes 4 runs at a time: do not flood it on the first tick.
    "PIPELINE_KAFKA_SENSOR_MAX_RUNS": "8",
    # Batch table pipelines run once as soon as their source tables are ingested, not hours
    # later on their cron (factory/pipeline_assets.py ``build_first_run_sensor``).
    "PIPELINE_PIPELINES_FIRST_RUN": "1",
}

#: Demo topics produced late on purpose (seconds behind): the demo registry gives the first a
#: ``max_lag_seconds`` of 1800, so its table's lag check warns from the first sensor tick.
DEMO_LATE_TOPICS = {"device.health.heartrate.raw": 1200.0}

_DAGSTER_STOP_SECONDS = 90.0

DEV_INSTANCE_YAML = """\
# Written by `pipeline-platform dev`: a local instance (SQLite storage) with the run queue on.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # The queue is looked at every second (default 5 s): a sensor run starts sooner.
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: pipeline_platform/table
        value: {applyLimitPerUniqueValue: true}
        limit: 1
freshness:
  enabled: true
telemetry:
  enabled: false
"""


def demo_registry_path() -> Path:
    """Return the path of the demo registry shipped inside the package."""
    return Path(str(resources.files("pipeline_platform.dev").joinpath(DEMO_REGISTRY)))


def broker_answers(kafka_config: dict[str, str], timeout: float = 3.0) -> bool:
    """Return True when a Kafka broker answers a metadata request within ``timeout`` seconds.

    A bootstrap server that does not even accept a TCP connection is ruled out first, so that an
    absent broker costs no client (and no librdkafka connection-refused log lines).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    if not _any_accepts(kafka_config.get("bootstrap.servers", ""), timeout=min(timeout, 1.0)):
        return False
    try:
        AdminClient(dict(kafka_config)).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _any_accepts(bootstrap: str, timeout: float) -> bool:
    for server in filter(None, (part.strip() for part in bootstrap.split(","))):
        server = server.split("://", 1)[-1]
        host, _, port = server.rpartition(":")
        if not port.isdigit():
            return True  # not host:port: let the client decide
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout):
                return True
        except OSError:
            continue
    return False


@dataclass
class LocalBroker:
    """A librdkafka mock cluster hosted in a child process."""

    process: subprocess.Popen[str]
    bootstrap: str

    @property
    def pid(self) -> int:
        """Process id of the broker."""
        return self.process.pid

    def stop(self) -> None:
        """Stop the broker process (and anything left in its process group)."""
        stop_process_group(self.process, signal.SIGTERM, timeout=10)


def start_local_broker(timeout: float = 30.0) -> LocalBroker:
    """Start ``python -m pipeline_platform.dev.mock_broker`` and wait for its bootstrap address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_platform.dev.mock_broker"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = ready[0].strip() if ready else ""
    if not line:
        stop_process_group(process, signal.SIGKILL, timeout=5)
        raise RuntimeError("the local broker did not start (no bootstrap address printed)")
    return LocalBroker(process, line)


def prepare_registry(
    settings: Settings, registry_file: Path, progress: Callable[[str], None]
) -> None:
    """Create or upgrade the registry and import ``registry_file`` (a no-op when unchanged)."""
    from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
    from pipeline_platform.registry.store import import_document
    from pipeline_platform.registry.validation import load_document

    engine = create_registry_engine(settings.registry_url)
    upgrade_registry(engine)
    result = import_document(
        engine,
        load_document(registry_file),
        actor="pipeline-platform dev",
        source=str(registry_file),
    )
    if result.revision is None:
        progress("registry up to date")
    else:
        progress(f"registry imported as revision {result.revision}")
    engine.dispose()


def write_instance_yaml(home: Path) -> None:
    """Write a local ``dagster.yaml`` into ``home`` unless one exists."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        target.write_text(DEV_INSTANCE_YAML, encoding="utf-8")


def stop_process_group(
    process: subprocess.Popen[Any], first: signal.Signals, timeout: float
) -> None:
    """Stop a process that leads its own process group, then whatever is left in the group.

    Sends ``first`` to the leader, waits up to ``timeout`` seconds, kills it when it has not
    exited, then sends SIGTERM and finally SIGKILL to the rest of the group (workers the leader
    left behind).

    Args:
        process: A process started with ``start_new_session=True``.
        first: The signal that asks the leader to stop (SIGINT, SIGTERM or SIGKILL).
        timeout: Seconds the leader gets to exit.
    """
    group = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(first)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop within %g s: killing it", group, timeout)
            process.kill()
            process.wait()
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return  # the group is empty
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def default_data_source_urls(document: RegistryDocument, home: Path) -> dict[str, str]:
    """Return SQLite URLs under ``home`` for data sources whose variable is not set.

    The ``warehouse`` data source is left out (its default lives in the settings).

    Args:
        document: The registry that is being served.
        home: The stack's ``DAGSTER_HOME``.

    Returns:
        ``{url_env: sqlite URL}`` for every other data source whose ``url_env`` is unset.
    """
    return {
        source.url_env: f"sqlite:///{home / f'{source.name}.db'}"
        for source in document.data_sources
        if source.name != "warehouse"
        and source.url_env != "PIPELINE_WAREHOUSE_URL"
        and not environment().get(source.url_env)
    }


@contextlib.contextmanager
def _stopping(callback: Callable[[], None]) -> Iterator[None]:
    try:
        yield
    finally:
        callback()


@contextlib.contextmanager
def _interrupt_signals() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt`` while the stack runs (main thread).

    SIGINT is set explicitly because a shell without job control starts background commands
    with SIGINT ignored, and children would inherit that: ``dagster dev`` would then ignore the
    SIGINT it is stopped with.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def run_dev_stack(
    *,
    home: Path,
    port: int = 3000,
    api_port: int = 8003,
    registry_file: Path | None = None,
    events_per_second: float = 200.0,
    progress: Callable[[str], None] = log.info,
) -> int:
    """Run the local stack until Ctrl-C (or SIGTERM) and return the exit code of ``dagster dev``.

    Progress lines name the process id of every child (``local broker at HOST:PORT (pid N)``,
    ``dagster dev ... (pid N)``), so supervisors and tests can check they are gone afterwards.

    Args:
        home: The ``DAGSTER_HOME`` directory (created when missing); the default SQLite registry
            and warehouse live there.
        port: Port of the Dagster webserver.
        api_port: Port of the platform API (``pipeline-platform serve``; 0 turns it off).
        registry_file: Registry YAML to import (default: the demo registry).
        events_per_second: Rate of demo events (0 turns the producer off).
        progress: Where progress lines go.

    Returns:
        0 after Ctrl-C, else the exit code of ``dagster dev``.
    """
    from pipeline_platform.registry.validation import load_document

    home = home.resolve()
    registry_file = registry_file or demo_registry_path()
    os.environ["DAGSTER_HOME"] = str(home)
    for name, value in DEV_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PIPELINE_DAGSTER_WEBSERVER_HOST", "127.0.0.1")
    os.environ.setdefault("PIPELINE_DAGSTER_WEBSERVER_PORT", str(port))
    write_instance_yaml(home)
    document = load_document(registry_file)
    for name, url in default_data_source_urls(document, home).items():
        os.environ[name] = url
        progress(f"{name} not set: using {url}")
    settings = load_settings()
    try:
        with _interrupt_signals(), contextlib.ExitStack() as stack:
            if broker_answers(settings.kafka_config()):
                progress(f"using the Kafka broker at {settings.kafka_bootstrap_servers}")
            else:
                progress(f"no broker at {settings.kafka_bootstrap_servers}: starting a local one")
                broker = start_local_broker()
                stack.enter_context(_stopping(broker.stop))
                os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
                settings = load_settings()
                progress(f"local broker at {broker.bootstrap} (pid {broker.pid})")
            prepare_registry(settings, registry_file, progress)
            if events_per_second > 0:
                from pipeline_platform.dev.producer import DemoProducer

                producer = DemoProducer(
                    document.topics,
                    settings.kafka_config(),
                    events_per_second,
                    late_seconds=DEMO_LATE_TOPICS,
                )
                producer.start()
                stack.enter_context(_stopping(producer.stop))
                progress(f"producing about {events_per_second:g} demo events/s")
            if api_port:
                api = _start_api(api_port)
                stack.enter_context(
                    _stopping(lambda: stop_process_group(api, signal.SIGTERM, timeout=10))
                )
                progress(f"API on http://127.0.0.1:{api_port} (pid {api.pid}; docs at /docs)")
            return _run_dagster_dev(port, progress)
    except KeyboardInterrupt:
        return 0
    finally:
        progress("local stack stopped")


def _start_api(port: int) -> subprocess.Popen[Any]:
    """Start ``pipeline-platform serve`` on ``port`` in its own session (same environment)."""
    command = [sys.executable, "-m", "pipeline_platform.cli.main", "serve", "--port", str(port)]
    return subprocess.Popen(command, start_new_session=True)


def _run_dagster_dev(port: int, progress: Callable[[str], None]) -> int:
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "pipeline_platform.definitions",
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    ]
    dagster = subprocess.Popen(command, start_new_session=True)
    progress(f"dagster dev on http://127.0.0.1:{port} (pid {dagster.pid}; Ctrl-C stops everything)")
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        progress("interrupted: stopping dagster dev, then the producer and the broker")
        try:
            stop_process_group(dagster, signal.SIGINT, timeout=_DAGSTER_STOP_SECONDS)
        except KeyboardInterrupt:
            stop_process_group(dagster, signal.SIGKILL, timeout=5)
        raise
    finally:
        if dagster.poll() is not None:
            stop_process_group(dagster, signal.SIGTERM, timeout=5)
