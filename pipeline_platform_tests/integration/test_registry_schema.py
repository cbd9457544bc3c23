"""The registry schema on SQLite and on PostgreSQL: migrations, the module catalog, the views."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES
from pipeline_platform.registry.database import (
    create_registry_engine,
    head_revision,
    schema_revision,
    upgrade_registry,
)
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.models import metadata, modules
from pipeline_platform.registry.store import import_document
from pipeline_platform_tests.integration.registry_tables import (
    TABLES,
    counts,
    engine,
    small,
    with_topic,
)

__all__ = ["engine", "small"]  # the fixtures, imported for this module


def test_migration_creates_tables_views_and_module_catalog(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(TABLES) <= set(inspector.get_table_names())
    assert set(inspector.get_view_names()) >= {"v_active_topics", "v_topic_dependencies"}
    assert schema_revision(engine) == head_revision() == "0004"
    with engine.connect() as connection:
        rows = connection.execute(select(modules.c.name, modules.c.kind)).all()
        diffs = compare_metadata(MigrationContext.configure(connection), metadata)
    assert sorted(rows) == sorted((m.name, m.kind) for m in BUILTIN_MODULES)
    assert diffs == []


def test_upgrade_is_repeatable_and_resyncs_modules(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(modules.delete().where(modules.c.name == "filter_rows"))
        connection.execute(modules.update().values(description="stale"))
        connection.execute(
            modules.insert().values(name="gone", kind="loader", description="", config_schema="{}")
        )
    upgrade_registry(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(modules.c.name, modules.c.description)).all()
    assert sorted(rows) == sorted((m.name, m.description) for m in BUILTIN_MODULES)


def test_views_return_hand_worked_rows(engine: Engine, small: RegistryDocument) -> None:
    import_document(engine, small, actor="alice")
    with engine.connect() as connection:
        active = connection.execute(
            text("SELECT topic_name, data_source, schema_name, table_name FROM v_active_topics")
        ).all()
        dependencies = connection.execute(
            text(
                "SELECT source_topic, flow, stage, service, stage_order, target_topic, "
                "target_role FROM v_topic_dependencies"
            )
        ).all()
    assert sorted(tuple(r) for r in active) == [
        ("device.audio.raw", "warehouse", None, "device_audio_raw"),
        ("device.network.wifi.raw", "warehouse", None, "device_network_wifi_raw"),
        ("errors.audio.vad", None, None, None),
        ("media.audio.vad_filtered", None, None, None),
        ("media.text.transcribed.words", "warehouse", None, "transcribed_words"),
    ]
    assert sorted(tuple(r) for r in dependencies) == [
        (
            "device.audio.raw",
            "audio-processing",
            "vad-processing",
            "silero-vad",
            1,
            "errors.audio.vad",
            "error",
        ),
        (
            "device.audio.raw",
            "audio-processing",
            "vad-processing",
            "silero-vad",
            1,
            "media.audio.vad_filtered",
            "output",
        ),
        (
            "media.audio.vad_filtered",
            "audio-processing",
            "speech-to-text",
            "kyutai-stt",
            2,
            "media.text.transcribed.words",
            "output",
        ),
    ]

    # An inactive topic leaves v_active_topics.
    import_document(engine, with_topic(small, "errors.audio.vad", active=False), actor="alice")
    with engine.connect() as connection:
        names = connection.execute(text("SELECT topic_name FROM v_active_topics")).scalars().all()
    assert sorted(names) == [
        "device.audio.raw",
        "device.network.wifi.raw",
        "media.audio.vad_filtered",
        "media.text.transcribed.words",
    ]


def test_create_registry_engine_makes_parent_dir_and_enforces_foreign_keys(
    tmp_path: Path,
) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'registry.db'}")
    upgrade_registry(engine)
    assert (tmp_path / "a" / "b" / "registry.db").exists()
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    engine.dispose()


def test_concurrent_upgrades_are_serialized(database_url: str) -> None:
    engines = [create_registry_engine(database_url) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(upgrade_registry, engines))
    assert schema_revision(engines[0]) == head_revision()
    assert counts(engines[0])["modules"] == len(BUILTIN_MODULES)
    for each in engines:  # not `engine`: that name is the imported fixture
        each.dispose()
