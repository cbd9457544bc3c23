"""The demo producer on the mock broker: late topics and where malformed messages go.

The demo makes one table lag on purpose (Kafka timestamps in the past) and keeps the other
tables' dead-letter checks green (malformed messages only for tables that tolerate them).
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from pipeline_platform.dev.producer import DemoProducer
from pipeline_platform.registry.document import Topic


def make_topic(name: str, **table: object) -> Topic:
    return Topic.model_validate(
        {
            "name": name,
            "table": {
                "name": name.replace(".", "_"),
                "mappings": [{"source": "id", "column": "id", "type": "integer"}],
                **table,
            },
        }
    )


def read_all(bootstrap: str, topic: str) -> list[tuple[float, bytes]]:
    """Return ``(timestamp seconds, value)`` of every message of a 4-partition topic."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
        found: list[tuple[float, bytes]] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 2.0:
            batch = consumer.consume(1000, timeout=0.5)
            for message in batch:
                if message.error() is None:
                    found.append((message.timestamp()[1] / 1000.0, bytes(message.value() or b"")))
            if batch:
                idle_since = time.monotonic()
        return found
    finally:
        consumer.close()


def test_late_topic_timestamps_and_malformed_messages_only_where_tolerated(
    kafka_bootstrap: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    strict = make_topic(f"demo.strict.{run}")
    tolerant = make_topic(f"demo.tolerant.{run}", max_dead_letter_ratio=0.5)
    late = make_topic(f"demo.late.{run}")
    producer = DemoProducer(
        [strict, tolerant, late],
        {"bootstrap.servers": kafka_bootstrap},
        messages_per_second=1500,
        bad_share=0.2,
        late_seconds={late.name: 1200.0},
    )
    producer.start()
    time.sleep(1.5)
    producer.stop()
    now = time.time()

    def malformed(messages: list[tuple[float, bytes]]) -> int:
        return sum(1 for _, value in messages if value == b'{"truncated": ')

    strict_messages = read_all(kafka_bootstrap, strict.name)
    tolerant_messages = read_all(kafka_bootstrap, tolerant.name)
    late_messages = read_all(kafka_bootstrap, late.name)
    assert len(strict_messages) > 100 and len(tolerant_messages) > 100
    assert malformed(strict_messages) == 0 and malformed(late_messages) == 0
    assert malformed(tolerant_messages) > 10  # about a fifth
    assert all(now - 1210 < stamp < now - 1190 for stamp, _ in late_messages)
    assert all(now - 10 < stamp <= now + 1 for stamp, _ in strict_messages)
