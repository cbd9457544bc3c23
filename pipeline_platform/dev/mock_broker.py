"""A Kafka-protocol broker for tests and local development: librdkafka's mock cluster.

``python -m pipeline_platform.dev.mock_broker [--brokers N]`` hosts the mock cluster inside this
process, prints the bootstrap address (one line, ``host:port[,host:port...]``) on stdout and keeps
serving until it is killed (SIGTERM/SIGINT end it cleanly). Other processes reach it over TCP.

Limits of the mock cluster: topics are auto-created with 4 partitions on first use, and only
about 5 MB per partition are retained (older messages are deleted, the low watermark moves).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from confluent_kafka import Producer


def start_mock_cluster(brokers: int = 1) -> tuple[Producer, str]:
    """Start a mock cluster hosted by a client in this process.

    Args:
        brokers: Number of mock brokers.

    Returns:
        The hosting client (keep it alive and polled) and the bootstrap address.
    """
    host = Producer({"test.mock.num.brokers": brokers, "log_level": 3})
    metadata = host.list_topics(timeout=10)
    bootstrap = ",".join(
        f"{b.host}:{b.port}" for b in sorted(metadata.brokers.values(), key=lambda b: b.id)
    )
    return host, bootstrap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mock broker until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--brokers", type=int, default=1, help="number of mock brokers")
    args = parser.parse_args(argv)
    host, bootstrap = start_mock_cluster(args.brokers)
    running = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(bootstrap + "\n")
    sys.stdout.flush()
    while running:
        host.poll(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
