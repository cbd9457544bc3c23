"""The one-command local stack behind ``pipeline-platform dev``.

Starts a Kafka-protocol broker when none answers, prepares the registry with the demo registry,
keeps producing demo events and runs ``dagster dev`` with the sensors on. Everything it starts is
stopped on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline_platform.config import Settings, load_settings

log = logging.getLogger(__name__)

DEMO_REGISTRY = "demo_registry.yaml"

DEV_INSTANCE_YAML = """\
# Written by `pipeline-platform dev`: a local instance (SQLite storage) with the run queue on.
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
    """Return True when a Kafka broker answers a metadata request within ``timeout`` seconds."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(dict(kafka_config)).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


@dataclass
class LocalBroker:
    """A librdkafka mock cluster hosted in a child process."""

    process: subprocess.Popen[str]
    bootstrap: str

    def stop(self) -> None:
        """Stop the broker process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_local_broker(timeout: float = 30.0) -> LocalBroker:
    """Start ``python -m pipeline_platform.dev.mock_broker`` and wait for its bootstrap address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_platform.dev.mock_broker"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        process.kill()
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


@contextlib.contextmanager
def _stopping(callback: Callable[[], None]) -> Iterator[None]:
    try:
        yield
    finally:
        callback()


def run_dev_stack(
    *,
    home: Path,
    port: int = 3000,
    registry_file: Path | None = None,
    events_per_second: float = 200.0,
    progress: Callable[[str], None] = log.info,
) -> int:
    """Run the local stack until Ctrl-C and return the exit code of ``dagster dev``.

    Args:
        home: The ``DAGSTER_HOME`` directory (created when missing); the default SQLite registry
            and warehouse live there.
        port: Port of the Dagster webserver.
        registry_file: Registry YAML to import (default: the demo registry).
        events_per_second: Rate of demo events (0 turns the producer off).
        progress: Where progress lines go.
    """
    home = home.resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("PIPELINE_SENSORS_RUNNING", "1")
    write_instance_yaml(home)
    settings = load_settings()
    with contextlib.ExitStack() as stack:
        if broker_answers(settings.kafka_config()):
            progress(f"using the Kafka broker at {settings.kafka_bootstrap_servers}")
        else:
            progress(f"no broker at {settings.kafka_bootstrap_servers}: starting a local one")
            broker = start_local_broker()
            stack.enter_context(_stopping(broker.stop))
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            settings = load_settings()
            progress(f"local broker at {broker.bootstrap}")
        prepare_registry(settings, registry_file or demo_registry_path(), progress)
        if events_per_second > 0:
            from pipeline_platform.dev.producer import DemoProducer
            from pipeline_platform.registry.validation import load_document

            document = load_document(registry_file or demo_registry_path())
            producer = DemoProducer(document.topics, settings.kafka_config(), events_per_second)
            producer.start()
            stack.enter_context(_stopping(producer.stop))
            progress(f"producing about {events_per_second:g} demo events/s")
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
        progress(f"starting dagster dev on http://127.0.0.1:{port} (Ctrl-C stops everything)")
        dagster = subprocess.Popen(command)
        try:
            return dagster.wait()
        except KeyboardInterrupt:
            dagster.send_signal(signal.SIGINT)
            try:
                dagster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dagster.kill()
            return 0
