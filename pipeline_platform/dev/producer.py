"""Demo events: messages synthesized from a topic's field mappings and produced to Kafka.

The messages follow the registry, not hand-written fixtures: for each mapped source path a value of
the mapped type is generated and placed at that path (``payload.tags[0]`` builds nested objects
and lists), so every ingested demo topic receives messages its mappings accept. A small share of
messages is deliberately bad (malformed JSON) so the dead-letter table has something to show.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline_platform.names import split_source_path
from pipeline_platform.registry.document import FieldMapping, TableConfig, Topic

log = logging.getLogger(__name__)

_DEVICES = tuple(f"dev-{n:04d}" for n in range(50))


def _value(mapping: FieldMapping, rng: random.Random, now: datetime) -> Any:
    kind = mapping.type
    column = mapping.column
    if "device" in column and kind == "string":
        return rng.choice(_DEVICES)
    if kind == "string":
        return rng.choice(("alpha", "beta", "gamma", "delta", "omega")) + f"-{rng.randint(0, 99)}"
    if kind == "integer":
        return rng.randint(-90, 5000)
    if kind == "float":
        return round(rng.uniform(-50.0, 500.0), 4)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "timestamp":
        moment = now - timedelta(milliseconds=rng.randint(0, 60_000))
        return moment.isoformat()
    if kind == "date":
        return (now - timedelta(days=rng.randint(0, 30))).date().isoformat()
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return {"note": "demo", "level": rng.randint(1, 5)}


def _place(message: dict[str, Any], path: Sequence[str | int], value: Any) -> None:
    node: Any = message
    for step, following in zip(path, (*path[1:], None), strict=True):
        if following is None:
            if isinstance(step, int):
                while len(node) <= step:
                    node.append(None)
            if isinstance(node, dict) and isinstance(node.get(step), dict | list):
                return  # a parent path of another mapping keeps its structure
            node[step] = value
            return
        container: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(None)
            if not isinstance(node[step], dict | list):
                node[step] = container
            node = node[step]
        else:
            existing = node.get(step)
            if not isinstance(existing, dict | list):
                node[step] = container
            node = node[step]


def synthesize_message(table: TableConfig, rng: random.Random, now: datetime) -> dict[str, Any]:
    """Build one message that the table's mappings accept.

    Args:
        table: The table configuration whose mappings shape the message.
        rng: Random source (seed it for repeatable messages).
        now: The time around which timestamps are generated.

    Returns:
        A JSON-ready dict.
    """
    message: dict[str, Any] = {}
    ordered = sorted(table.mappings, key=lambda m: len(split_source_path(m.source)))
    for mapping in ordered:
        if mapping.type == "json":
            continue
        _place(message, split_source_path(mapping.source), _value(mapping, rng, now))
    for mapping in table.mappings:
        if mapping.type == "json":
            path = split_source_path(mapping.source)
            node: Any = message
            for step in path[:-1]:
                if isinstance(node, list) and isinstance(step, int) and step < len(node):
                    node = node[step]
                elif isinstance(node, dict):
                    node = node.setdefault(step, {})
            if isinstance(node, dict):
                node.setdefault(path[-1], _value(mapping, rng, now))
    return message


class DemoProducer:
    """Produce demo events to every ingested topic of a registry until stopped.

    Args:
        topics: The topics to produce to (those without a table are skipped).
        kafka_config: librdkafka settings (bootstrap servers and security).
        messages_per_second: Total rate across topics.
        bad_share: Fraction of messages that are deliberately malformed.
    """

    def __init__(
        self,
        topics: Sequence[Topic],
        kafka_config: dict[str, str],
        messages_per_second: float = 200.0,
        bad_share: float = 0.01,
    ) -> None:
        self._topics = [t for t in topics if t.table is not None and t.active]
        self._config = dict(kafka_config)
        self._rate = messages_per_second
        self._bad_share = bad_share
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.produced = 0

    def start(self) -> None:
        """Start producing in a background thread."""
        self._thread = threading.Thread(target=self._run, name="demo-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop producing and flush what is queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({**self._config, "linger.ms": "50"})
        rng = random.Random(7)
        tick = 0.2
        per_tick = max(1, int(self._rate * tick))
        while not self._stop.is_set() and self._topics:
            started = time.monotonic()
            now = datetime.now(UTC)
            for _ in range(per_tick):
                topic = rng.choice(self._topics)
                assert topic.table is not None
                if rng.random() < self._bad_share:
                    value = b'{"truncated": '
                else:
                    value = orjson.dumps(synthesize_message(topic.table, rng, now))
                try:
                    producer.produce(topic.name, value=value, key=rng.choice(_DEVICES).encode())
                except BufferError:
                    producer.poll(0.5)
                self.produced += 1
            producer.poll(0)
            self._stop.wait(max(0.0, tick - (time.monotonic() - started)))
        producer.flush(10)
        log.info("demo producer stopped after %d messages", self.produced)
