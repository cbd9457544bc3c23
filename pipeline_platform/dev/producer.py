"""Demo events: messages synthesized from a topic's field mappings and produced to Kafka.

The messages follow the registry, not hand-written fixtures: for each mapped source path a value of
the mapped type is generated and placed at that path (``payload.tags[0]`` builds nested objects
and lists), so every ingested demo topic receives messages its mappings accept. A small share of
the messages of tables that tolerate dead letters (their registry entry sets
``max_dead_letter_ratio``) is deliberately bad (malformed JSON), so the dead-letter table has
something to show while the other tables' checks stay green. Topics given in ``late_seconds``
get Kafka timestamps that many seconds in the past, so their tables' lag in seconds shows.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline_platform.names import split_source_path
from pipeline_platform.registry.document import FieldMapping, TableConfig, Topic

log = logging.getLogger(__name__)

_DEVICES = tuple(f"dev-{n:04d}" for n in range(50))


def _property_schema(schema: Any, path: Sequence[str | int]) -> dict[str, Any]:
    """Return the JSON Schema of the value at ``path`` (empty when the schema says nothing)."""
    node = schema if isinstance(schema, dict) else {}
    for step in path:
        key = "items" if isinstance(step, int) else "properties"
        child = node.get(key)
        if isinstance(child, dict) and isinstance(step, str):
            child = child.get(step)
        node = child if isinstance(child, dict) else {}
    return node


def _constrained(rules: dict[str, Any], rng: random.Random) -> tuple[bool, Any]:
    if "const" in rules:
        return True, rules["const"]
    if isinstance(rules.get("enum"), list) and rules["enum"]:
        return True, rng.choice(rules["enum"])
    if rules.get("contentEncoding") == "base64":
        return True, "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
    fmt = rules.get("format")
    if fmt in ("uri", "url"):
        return True, f"https://example.com/page/{rng.randint(1, 999)}"
    if fmt == "email":
        return True, f"user{rng.randint(1, 999)}@example.com"
    low = rules.get("minimum", rules.get("exclusiveMinimum"))
    high = rules.get("maximum", rules.get("exclusiveMaximum"))
    if isinstance(low, int | float) or isinstance(high, int | float):
        low = float(low) if isinstance(low, int | float) else 0.0
        high = float(high) if isinstance(high, int | float) else low + 1000.0
        value = rng.uniform(low, high)
        if rules.get("type") == "integer":
            return True, max(int(low) + 1, min(int(high) - 1, round(value)))
        return True, round(min(max(value, low + 1e-6), high - 1e-6), 4)
    return False, None


def _value(mapping: FieldMapping, rng: random.Random, now: datetime, rules: dict[str, Any]) -> Any:
    constrained, value = _constrained(rules, rng)
    if constrained:
        return value
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


def synthesize_message(
    table: TableConfig,
    rng: random.Random,
    now: datetime,
    json_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one message that the table's mappings and the topic's JSON Schema accept.

    Args:
        table: The table configuration whose mappings shape the message.
        rng: Random source (seed it for repeatable messages).
        now: The time around which timestamps are generated.
        json_schema: The topic's schema; enums, bounds and formats of mapped fields are honoured.

    Returns:
        A JSON-ready dict.
    """
    message: dict[str, Any] = {}
    ordered = sorted(table.mappings, key=lambda m: len(split_source_path(m.source)))
    for mapping in ordered:
        if mapping.type == "json":
            continue
        path = split_source_path(mapping.source)
        rules = _property_schema(json_schema, path)
        _place(message, path, _value(mapping, rng, now, rules))
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
                node.setdefault(path[-1], _value(mapping, rng, now, {}))
    return message


class DemoProducer:
    """Produce demo events to every ingested topic of a registry until stopped.

    Args:
        topics: The topics to produce to (those without a table are skipped).
        kafka_config: librdkafka settings (bootstrap servers and security).
        messages_per_second: Total rate across topics.
        bad_share: Fraction of the messages of tolerant tables that are malformed.
        late_seconds: Topic → seconds its messages' Kafka timestamps lie in the past.
    """

    def __init__(
        self,
        topics: Sequence[Topic],
        kafka_config: dict[str, str],
        messages_per_second: float = 200.0,
        bad_share: float = 0.01,
        late_seconds: Mapping[str, float] | None = None,
    ) -> None:
        self._topics = [t for t in topics if t.table is not None and t.active]
        self._bad_topics = {
            t.name for t in self._topics if t.table and t.table.max_dead_letter_ratio is not None
        }
        self._late_ms = {name: int(s * 1000) for name, s in (late_seconds or {}).items()}
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
                if topic.name in self._bad_topics and rng.random() < self._bad_share:
                    value = b'{"truncated": '
                else:
                    message = synthesize_message(topic.table, rng, now, topic.json_schema)
                    value = orjson.dumps(message)
                stamp = int(now.timestamp() * 1000) - self._late_ms.get(topic.name, 0)
                try:
                    producer.produce(
                        topic.name,
                        value=value,
                        key=rng.choice(_DEVICES).encode(),
                        timestamp=stamp,
                    )
                except BufferError:
                    producer.poll(0.5)
                self.produced += 1
            producer.poll(0)
            self._stop.wait(max(0.0, tick - (time.monotonic() - started)))
        producer.flush(10)
        log.info("demo producer stopped after %d messages", self.produced)
