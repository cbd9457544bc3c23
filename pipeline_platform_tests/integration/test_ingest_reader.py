"""The range reader against the mock broker over TCP: small reads do not wait for a full batch."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer

from pipeline_platform.ingestion.kafka_offsets import topic_watermarks
from pipeline_platform.ingestion.reader import consumer_config, plan_ranges, read_batches
from pipeline_platform_tests.kafka import produce


class RecordingConsumer(Consumer):
    """A real consumer that records how many messages each ``consume`` call asked for."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.asked: list[int] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:  # type: ignore[override]
        self.asked.append(num_messages)
        return super().consume(num_messages=num_messages, timeout=timeout)


def test_a_small_read_asks_only_for_what_is_left(kafka_bootstrap: str) -> None:
    topic = f"test.reader.{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, topic, [(0, None, b"a"), (0, None, b"b"), (1, None, b"c")])
    kafka = {"bootstrap.servers": kafka_bootstrap}
    ranges = plan_ranges(topic_watermarks(kafka, topic, 10.0), {}, topic)
    assert sum(r.end - r.start for r in ranges.values()) == 3
    consumer = RecordingConsumer(consumer_config(kafka, f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        batches = list(read_batches(consumer, topic, ranges, batch_size=50_000))
    finally:
        consumer.close()
    values = sorted(value for batch, _positions in batches for _p, _o, _k, value in batch)
    assert values == [b"a", b"b", b"c"]
    # consume() returns once it has as many messages as asked: asking for the 50,000 of a
    # batch would make every small read wait out the poll timeout.
    assert consumer.asked[0] == 3
    assert max(consumer.asked) <= 3
    assert consumer_config(kafka, "g")["fetch.wait.max.ms"] <= 10
