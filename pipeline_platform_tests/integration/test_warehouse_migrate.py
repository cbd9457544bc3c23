"""Column types follow the registry: validate --against-warehouse, warehouse migrate."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from pipeline_platform.cli.main import main
from pipeline_platform.ingestion.service import ingest_table
from pipeline_platform.registry.validation import load_document
from pipeline_platform.warehouse import ColumnTypeMismatch
from pipeline_platform_tests.integration.ingest_helpers import kafka, rows_of
from pipeline_platform_tests.kafka import produce


def registry(path: Path, topic: str, table: str, kinds: dict[str, str]) -> Path:
    mappings = [{"source": "id", "column": "id", "type": "integer", "required": True}]
    mappings += [{"source": c, "column": c, "type": t} for c, t in kinds.items()]
    data: dict[str, Any] = {
        "version": 1,
        "topics": [
            {"name": topic, "table": {"name": table, "upsert_key": ["id"], "mappings": mappings}}
        ],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def ingest(path: Path, topic: str, postgres_url: str, bootstrap: str) -> Any:
    found = load_document(path).topic(topic)
    assert found is not None
    return ingest_table(
        found, warehouse_url=postgres_url, kafka_config=kafka(bootstrap), run_id="r"
    )


@pytest.fixture
def env(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("PIPELINE_WAREHOUSE_URL", postgres_url)
    return tmp_path


def test_type_change_unmigrated_then_migrated(
    env: Path, postgres_url: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, table = f"test.migrate.{uuid.uuid4().hex[:8]}", f"m_{uuid.uuid4().hex[:8]}"
    before = registry(env / "before.yaml", topic, table, {"is_open": "boolean"})
    assert main(["registry", "import", str(before)]) == 0
    produce(kafka_bootstrap, topic, [(0, None, orjson.dumps({"id": 1, "is_open": True}))])
    assert ingest(before, topic, postgres_url, kafka_bootstrap).rows_written == 1

    # The registry now says string: the table is not migrated yet.
    after = registry(env / "after.yaml", topic, table, {"is_open": "string"})
    assert main(["registry", "import", str(after)]) == 0
    assert "run `pipeline-platform warehouse migrate`" in capsys.readouterr().err
    produce(kafka_bootstrap, topic, [(0, None, orjson.dumps({"id": 2, "is_open": "maybe"}))])
    with pytest.raises(ColumnTypeMismatch) as failure:
        ingest(after, topic, postgres_url, kafka_bootstrap)
    reason = str(failure.value)
    assert reason == (
        f"column is_open of {table} is boolean, the registry says string: "
        "run `pipeline-platform warehouse migrate`"
    )
    assert "\n" not in reason
    assert main(["registry", "validate", str(after), "--against-warehouse"]) == 1
    assert "topics[0].table.mappings[1].type: column is_open" in capsys.readouterr().err

    # Dry run prints the statement and changes nothing.
    assert main(["warehouse", "migrate", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f'ALTER TABLE "{table}" ALTER COLUMN "is_open" TYPE text USING "is_open"::text' in out
    assert rows_of(postgres_url, f"SELECT pg_typeof(is_open)::text FROM {table}") == [("boolean",)]

    assert main(["warehouse", "migrate"]) == 0
    assert "migrated 1 column(s)" in capsys.readouterr().out
    assert main(["registry", "validate", str(after), "--against-warehouse"]) == 0
    result = ingest(after, topic, postgres_url, kafka_bootstrap)
    assert (result.rows_written, result.dead_letters) == (1, 0)
    assert rows_of(postgres_url, f"SELECT id, is_open FROM {table} ORDER BY id") == [
        (1, "true"),
        (2, "maybe"),
    ]
    assert main(["warehouse", "migrate"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out


def test_lossy_conversion_needs_force(
    env: Path, postgres_url: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, table = f"test.migrate.{uuid.uuid4().hex[:8]}", f"m_{uuid.uuid4().hex[:8]}"
    before = registry(env / "before.yaml", topic, table, {"level": "float"})
    assert main(["registry", "import", str(before)]) == 0
    produce(kafka_bootstrap, topic, [(0, None, orjson.dumps({"id": 1, "level": 1.5}))])
    assert ingest(before, topic, postgres_url, kafka_bootstrap).rows_written == 1
    after = registry(env / "after.yaml", topic, table, {"level": "integer"})
    assert main(["registry", "import", str(after)]) == 0
    capsys.readouterr()
    assert main(["warehouse", "migrate"]) == 1
    err = capsys.readouterr().err
    assert "1 stored value(s) would change; refused (use --force" in err
    assert rows_of(postgres_url, f"SELECT level FROM {table}") == [(1.5,)]
    assert main(["warehouse", "migrate", "--force"]) == 0
    assert rows_of(postgres_url, f"SELECT level FROM {table}") == [(2,)]
