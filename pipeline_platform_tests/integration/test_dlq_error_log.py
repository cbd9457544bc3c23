"""The error log: ``dlq list --reason/--since`` and ``dlq stats`` on a PostgreSQL warehouse.

Dead letters of four kinds are produced for real (mock broker → ingestion → PostgreSQL); two of
them are then aged by two days in the database, so the ``--since`` windows have something to
leave out. ``dlq stats`` must count the *stored* ``reason_kind`` (one classifier, at write time).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform.factory.assets import materialization_metadata
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.validation import load_document
from pipeline_platform_tests.kafka import produce
from pipeline_platform_tests.pipelines_helpers import conninfo


def _registry(path: Path, topic: str) -> Path:
    document = {
        "version": 1,
        "topics": [
            {
                "name": topic,
                "schema": {"type": "object", "required": ["id"]},
                "table": {
                    "name": "dlq_log",
                    "upsert_key": ["id"],
                    "mappings": [
                        {"source": "id", "column": "id", "type": "integer", "required": True},
                        {"source": "n", "column": "n", "type": "integer"},
                    ],
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _dlq(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["dlq", *args, "--json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_dlq_list_filters_by_reason_and_age_and_stats_count_stored_kinds(
    tmp_path: Path,
    postgres_url: str,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"test.dlq.log.{uuid.uuid4().hex[:8]}"
    registry_file = _registry(tmp_path / "registry.yaml", name)
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("PIPELINE_WAREHOUSE_URL", postgres_url)
    assert main(["registry", "import", str(registry_file)]) == 0
    topic = load_document(registry_file).topic(name)
    assert topic is not None
    produce(
        kafka_bootstrap,
        name,
        [
            (0, None, orjson.dumps({"id": 1, "n": 5})),
            (0, None, orjson.dumps({"id": 2, "n": "x"})),  # mapping
            (0, None, b"{nope"),  # parse
            (0, None, orjson.dumps({"n": 3})),  # schema: id is required
            (0, None, orjson.dumps({"id": 4, "n": "y"})),  # mapping
        ],
    )
    result = ingest_table(
        topic,
        warehouse_url=postgres_url,
        kafka_config={"bootstrap.servers": kafka_bootstrap},
        run_id="r1",
    )
    assert (result.rows_written, result.dead_letters) == (1, 4)
    # The materialization shows the run's last dead letters with their kind and position.
    shown = materialization_metadata(result)["last_dead_letters"].text.splitlines()
    assert [line.split(":")[0] for line in shown] == [
        "[mapping] 0@1",
        "[parse] 0@2",
        "[schema] 0@3",
        "[mapping] 0@4",
    ]
    # Age offsets 1 and 2 by two days.
    with psycopg.connect(conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE pp_dead_letters SET created_at = now() - interval '2 days' "
            'WHERE "offset" IN (1, 2)'
        )

    def offsets(*args: str) -> list[object]:
        return [d["offset"] for d in _dlq(capsys, "list", name, *args)]

    assert offsets() == [1, 2, 3, 4]
    assert offsets("--reason", "mapping") == [1, 4]
    assert offsets("--reason", "parse") == [2]
    assert offsets("--reason", "database") == []
    assert offsets("--since", "24h") == [3, 4]
    assert offsets("--since", "7d") == [1, 2, 3, 4]
    assert offsets("--since", "1h", "--reason", "mapping") == [4]
    assert {d["reasonKind"] for d in _dlq(capsys, "list", "--reason", "schema")} == {"schema"}

    for bad in (["--since", "3x"], ["--since", "0h"], ["--reason", "typo"]):
        capsys.readouterr()
        assert main(["dlq", "list", name, *bad]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {bad[0]} ")

    stats = _dlq(capsys, "stats")
    assert stats == [
        {
            "table": "warehouse/dlq_log",
            "topic": name,
            "total": {"mapping": 2, "parse": 1, "schema": 1},
            "last24h": {"mapping": 1, "schema": 1},
        }
    ]
    # Counts come from the stored kind, not from re-reading the reason text.
    with psycopg.connect(conninfo(postgres_url), autocommit=True) as conn:
        conn.execute("""UPDATE pp_dead_letters SET reason_kind = 'database' WHERE "offset" = 3""")
    assert _dlq(capsys, "stats", name)[0]["last24h"] == {"database": 1, "mapping": 1}
