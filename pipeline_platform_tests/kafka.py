"""A real Kafka-protocol broker for tests: the mock cluster in its own process, over TCP.

Also small producer helpers. Mind the mock broker's ~5 MB per partition retention and its
4 auto-created partitions per topic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer


@contextmanager
def mock_broker(brokers: int = 1, timeout: float = 30.0) -> Iterator[str]:
    """Start ``python -m pipeline_platform.dev.mock_broker`` and yield its bootstrap address."""
    with mock_broker_process(brokers) as (_process, bootstrap):
        yield bootstrap


@contextmanager
def mock_broker_process(brokers: int = 1) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Like :func:`mock_broker`, yielding the broker process too (to kill it in a test)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_platform.dev.mock_broker", "--brokers", str(brokers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line:
            raise RuntimeError("the mock broker did not print its bootstrap address")
        yield process, line
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[int | None, bytes | None, bytes | None]],
    settings: Mapping[str, Any] | None = None,
) -> int:
    """Produce ``(partition, key, value)`` messages (partition None = by key) and flush.

    Args:
        bootstrap: The brokers.
        topic: The topic.
        messages: ``(partition, key, value)`` triples.
        settings: librdkafka producer settings over the defaults (e.g. small batches).

    Returns:
        The number of messages produced.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "enable.idempotence": False,
            "acks": "all",
            "compression.type": "none",
            **(settings or {}),
        }
    )
    count = 0
    for partition, key, value in messages:
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value=value, key=key)
                else:
                    producer.produce(topic, value=value, key=key, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} messages were not delivered")
    return count
