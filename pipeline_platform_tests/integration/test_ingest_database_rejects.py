"""Rows the database refuses are dead-lettered (kind ``database``); the rest commits."""

from __future__ import annotations

import uuid

import orjson

from pipeline_platform.ingestion.service import ingest_table, list_dead_letters
from pipeline_platform.registry.document import Topic
from pipeline_platform_tests.integration.ingest_helpers import kafka, rows_of
from pipeline_platform_tests.kafka import produce

TOTAL = 10_000
BAD = {
    1234: {"name": "much-too-long"},  # varchar(8) created by hand
    5678: {"score": -1.0},  # CHECK (score >= 0)
    9012: {"small": 2**40},  # an integer column created by hand as int4
}


def message(i: int) -> bytes:
    body: dict[str, object] = {"id": i, "name": f"n{i}", "score": i / 7, "small": i}
    body.update(BAD.get(i, {}))
    return orjson.dumps(body)


def topic_for(table: str) -> Topic:
    return Topic.model_validate(
        {
            "name": f"test.rejects.{uuid.uuid4().hex[:8]}",
            "table": {
                "name": table,
                "upsert_key": ["id"],
                "mappings": [
                    {"source": "id", "column": "id", "type": "integer", "required": True},
                    {"source": "name", "column": "name", "type": "string"},
                    {"source": "score", "column": "score", "type": "float"},
                    {"source": "small", "column": "small", "type": "integer"},
                ],
            },
        }
    )


def test_three_refused_rows_among_ten_thousand(postgres_url: str, kafka_bootstrap: str) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    rows_of(postgres_url, "SELECT 1")  # the database is up
    import psycopg

    from pipeline_platform.warehouse import postgres_conninfo

    with psycopg.connect(postgres_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, name varchar(8), "
            "score double precision CHECK (score >= 0), small integer)"
        )
    topic = topic_for(table)
    produce(kafka_bootstrap, topic.name, ((i % 4, None, message(i)) for i in range(TOTAL)))

    result = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="r1"
    )

    assert (result.messages, result.rows_written, result.dead_letters) == (TOTAL, 9_997, 3)
    assert rows_of(postgres_url, f"SELECT count(*) FROM {table}") == [(9_997,)]
    stored = rows_of(postgres_url, f"SELECT id FROM {table} WHERE id IN (1234, 5678, 9012)")
    assert stored == []
    letters = list_dead_letters(topic, warehouse_url=postgres_url, limit=None)
    assert {orjson.loads(d.raw or b"")["id"] for d in letters} == set(BAD)
    assert {d.reason_kind for d in letters} == {"database"}
    reasons = " | ".join(sorted(d.reason for d in letters))
    assert "too long" in reasons and "check constraint" in reasons and "out of range" in reasons
    assert all(d.reason.startswith("database: ") for d in letters)
    # Offsets at the end of every partition: the run can be repeated and writes nothing new.
    offsets = rows_of(
        postgres_url,
        f"SELECT sum(next_offset) FROM pp_ingestion_offsets WHERE topic = '{topic.name}'",
    )
    assert offsets == [(TOTAL,)]
    again = ingest_table(
        topic, warehouse_url=postgres_url, kafka_config=kafka(kafka_bootstrap), run_id="r2"
    )
    assert (again.messages, again.rows_written) == (0, 0)
