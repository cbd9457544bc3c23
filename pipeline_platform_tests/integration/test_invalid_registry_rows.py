"""A row made invalid by a hand-written SQL edit is skipped and reported, never fatal."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from pipeline_platform.config import load_settings
from pipeline_platform.factory import loader, naming
from pipeline_platform.factory.builder import FactoryOptions, build_definitions
from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.store import import_document, read_document
from pipeline_platform.registry.validation import load_document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


def test_hand_edited_rows_are_skipped_reported_and_repaired_by_import(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_registry_engine(database_url)
    upgrade_registry(engine)
    document = load_document(FIXTURE)
    import_document(engine, document, actor="test")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE topic_field_mappings SET data_type = 'int' "
                "WHERE target_column = 'signal_dbm'"
            )
        )
        connection.execute(
            sa.text("UPDATE pipeline_flows SET priority = 'urgent' WHERE name = 'audio-processing'")
        )

    problems: list[str] = []
    partial = read_document(engine, problems)
    assert [t.name for t in partial.topics] == [
        "device.audio.raw",
        "errors.audio.vad",
        "media.audio.vad_filtered",
        "media.text.transcribed.words",
    ]
    assert [f.name for f in partial.flows] == ["network-monitoring"]
    assert len(problems) == 2
    assert problems[0].startswith(
        "topic 'device.network.wifi.raw' skipped: invalid registry row (table.mappings.3.type:"
    )
    assert problems[1].startswith(
        "flow 'audio-processing' skipped: invalid registry row (priority:"
    )

    # The code location still loads, without the bad entities, and says why in the UI.
    settings = load_settings({"PIPELINE_REGISTRY_URL": database_url, "DAGSTER_HOME": str(tmp_path)})
    snapshot = loader.read_registry(settings, {})
    assert snapshot.problems == tuple(problems)
    defs = build_definitions(snapshot, options=FactoryOptions(), environ={})
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert "warehouse/device_audio_raw" in keys
    assert "warehouse/device_network_wifi_raw" not in keys
    status = graph.get(naming.REGISTRY_STATUS_KEY)
    assert status.description is not None
    assert "2 registry record(s) skipped" in status.description
    assert "device.network.wifi.raw" in status.description
    assert status.metadata["skipped_records"] in (2, dg.IntMetadataValue(2))

    # Importing the good file rewrites the broken entities whole.
    result = import_document(engine, document, actor="repair")
    assert result.revision == 2
    assert result.diff.topics.changed.keys() == {"device.network.wifi.raw"}
    assert result.diff.flows.changed.keys() == {"audio-processing"}
    problems.clear()
    assert read_document(engine, problems) == document.canonical()
    assert problems == []
    assert import_document(engine, document, actor="again").revision is None
