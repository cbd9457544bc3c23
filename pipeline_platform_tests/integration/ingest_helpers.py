"""Ingestion test helpers: test topics, good and poison messages, warehouse rows, broker config."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import psycopg

from pipeline_platform.registry.document import Topic
from pipeline_platform.warehouse import postgres_conninfo

PARTITIONS = 4  # the mock broker auto-creates topics with 4 partitions

MAPPINGS = [
    {"source": "device_id", "column": "device_id", "type": "string", "required": True},
    {"source": "recorded_at", "column": "recorded_at", "type": "timestamp", "required": True},
    {"source": "payload.rssi", "column": "signal_dbm", "type": "integer"},
    {"source": "payload.level", "column": "level", "type": "float"},
    {"source": "payload.ok", "column": "ok", "type": "boolean"},
    {"source": "payload.day", "column": "day", "type": "date"},
    {"source": "payload.scan_id", "column": "scan_id", "type": "uuid"},
    {"source": "payload.tags[0]", "column": "first_tag", "type": "string", "default": "none"},
    {"source": "payload", "column": "payload", "type": "json"},
]


def make_topic(
    key: tuple[str, ...] = ("device_id", "recorded_at"),
    mappings: list[dict[str, Any]] | None = None,
    name: str | None = None,
    table: str | None = None,
) -> Topic:
    suffix = uuid.uuid4().hex[:8]
    return Topic.model_validate(
        {
            "name": name or f"test.ingest.{suffix}",
            "partitions": PARTITIONS,
            "schema": {
                "type": "object",
                "required": ["device_id"],
                "properties": {"payload": {"type": "object"}},
            },
            "table": {
                "name": table or f"t_{suffix}",
                "upsert_key": list(key),
                "time_column": "recorded_at",
                "mappings": mappings or MAPPINGS,
            },
        }
    )


def good(i: int, device: str | None = None, rssi: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "device_id": device or f"dev-{i}",
            "recorded_at": f"2024-05-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "payload": {
                "rssi": -40 - i % 50 if rssi is None else rssi,
                "level": i / 10,
                "ok": i % 2 == 0,
                "day": "2024-05-01",
                "scan_id": str(uuid.UUID(int=i)),
                "tags": ["home"] if i % 2 else [],
            },
        }
    )


def poison() -> list[tuple[bytes | None, str]]:
    """Bad messages of every kind, with the expected reason prefix."""
    base = orjson.loads(good(1))

    def variant(**payload: Any) -> bytes:
        return orjson.dumps({**base, "payload": {**base["payload"], **payload}})

    return [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "empty message"),
        (b"[1, 2, 3]", "not a JSON object"),
        (orjson.dumps({"recorded_at": "2024-05-01T00:00:00Z"}), "schema violation"),
        (orjson.dumps({**base, "payload": "flat"}), "schema violation"),
        (orjson.dumps({"device_id": "x"}), "missing required field: column recorded_at"),
        (orjson.dumps({**base, "recorded_at": "not a time"}), "column recorded_at"),
        (variant(rssi=1.5), "column signal_dbm"),
        (variant(rssi="abc"), "column signal_dbm"),
        (variant(level="high"), "column level"),
        (variant(ok="yes"), "column ok"),
        (variant(day="2024-02-30"), "column day"),
        (variant(scan_id="not-a-uuid"), "column scan_id"),
        (variant(tags=["a\x00b"]), "column first_tag"),
        (b'{"device_id": "' + b"x" * 3000 + b'"}', "oversized message"),
    ]


def rows_of(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres_conninfo(url)) as conn:
        return conn.execute(sql).fetchall()


def kafka(bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": bootstrap}
