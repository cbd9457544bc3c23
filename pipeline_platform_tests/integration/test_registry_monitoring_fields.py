"""The monitoring thresholds of a table: stored, exported, and migration 0004 reversible."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from pipeline_platform.registry.database import (
    alembic_config,
    create_registry_engine,
    upgrade_registry,
)
from pipeline_platform.registry.store import import_document, read_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform.registry.yaml_io import dump_document, parse_document

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "small_registry.yaml"
WIFI = "device.network.wifi.raw"


def _migrate(url: str, target: str, downgrade: bool = False) -> None:
    engine = create_registry_engine(url)
    with engine.begin() as connection:
        config = alembic_config(connection)
        (command.downgrade if downgrade else command.upgrade)(config, target)
    engine.dispose()


def test_thresholds_round_trip_through_import_and_export(database_url: str) -> None:
    small = load_document(SMALL)
    wifi = small.topic(WIFI)
    assert wifi is not None and wifi.table is not None
    table = wifi.table.model_copy(update={"max_lag_seconds": 120, "max_dead_letter_ratio": 0.05})
    topics = tuple(
        t.model_copy(update={"table": table}) if t.name == WIFI else t for t in small.topics
    )
    document = small.model_copy(update={"topics": topics})
    engine = create_registry_engine(database_url)
    upgrade_registry(engine)
    import_document(engine, document, actor="alice")
    exported = dump_document(read_document(engine))
    assert "max_lag_seconds: 120" in exported
    assert "max_dead_letter_ratio: 0.05" in exported
    stored = parse_document(exported).topic(WIFI)
    assert stored is not None and stored.table is not None
    assert (stored.table.max_lag_seconds, stored.table.max_dead_letter_ratio) == (120, 0.05)
    audio = read_document(engine).topic("device.audio.raw")
    assert audio is not None and audio.table is not None
    assert (audio.table.max_lag_seconds, audio.table.max_dead_letter_ratio) == (None, None)
    engine.dispose()


def test_migration_0004_downgrades_and_upgrades(database_url: str) -> None:
    _migrate(database_url, "head")
    engine = create_registry_engine(database_url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("topic_table_configs")}

    assert {"max_lag_seconds", "max_dead_letter_ratio"} <= columns()
    _migrate(database_url, "0003", downgrade=True)
    assert not {"max_lag_seconds", "max_dead_letter_ratio"} & columns()
    _migrate(database_url, "head")
    assert {"max_lag_seconds", "max_dead_letter_ratio"} <= columns()
    engine.dispose()
