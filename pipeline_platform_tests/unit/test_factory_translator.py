"""Translation of the fixture registry into asset specs: keys, deps, groups, kinds, metadata."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from pipeline_platform.factory.naming import dagster_name
from pipeline_platform.factory.translator import RegistryTranslator, TranslatedRegistry
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import load_document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


@pytest.fixture(scope="module")
def document() -> RegistryDocument:
    return load_document(FIXTURE)


@pytest.fixture(scope="module")
def translated(document: RegistryDocument) -> TranslatedRegistry:
    return RegistryTranslator().translate(document)


def _specs(translated: TranslatedRegistry) -> dict[str, dg.AssetSpec]:
    specs = [*translated.external_specs, *translated.table_specs]
    return {spec.key.to_user_string(): spec for spec in specs}


def _deps(spec: dg.AssetSpec) -> list[str]:
    return [dep.asset_key.to_user_string() for dep in spec.deps]


def test_asset_keys(translated: TranslatedRegistry) -> None:
    assert sorted(_specs(translated)) == [
        "api/audio/stream/{device_id}",
        "api/audio/upload",
        "api/network/wifi",
        "kafka/device.audio.raw",
        "kafka/device.network.wifi.raw",
        "kafka/errors.audio.vad",
        "kafka/media.audio.vad_filtered",
        "kafka/media.text.transcribed.words",
        "warehouse/device_audio_raw",
        "warehouse/device_network_wifi_raw",
        "warehouse/transcribed_words",
    ]
    assert translated.skipped == ()


def test_deps_groups_and_kinds(translated: TranslatedRegistry) -> None:
    expected = {
        "api/audio/stream/{device_id}": ([], "audio_processing", {"api"}),
        "api/audio/upload": ([], "audio_processing", {"api"}),
        "api/network/wifi": ([], "network_monitoring", {"api"}),
        "kafka/device.audio.raw": (
            ["api/audio/upload", "api/audio/stream/{device_id}"],
            "audio_processing",
            {"kafka"},
        ),
        "kafka/device.network.wifi.raw": (["api/network/wifi"], "network_monitoring", {"kafka"}),
        "kafka/errors.audio.vad": (["kafka/device.audio.raw"], "audio_processing", {"kafka"}),
        "kafka/media.audio.vad_filtered": (
            ["kafka/device.audio.raw"],
            "audio_processing",
            {"kafka"},
        ),
        "kafka/media.text.transcribed.words": (
            ["kafka/media.audio.vad_filtered"],
            "audio_processing",
            {"kafka"},
        ),
        "warehouse/device_audio_raw": (
            ["kafka/device.audio.raw"],
            "audio_processing",
            {"postgres", "table"},
        ),
        "warehouse/device_network_wifi_raw": (
            ["kafka/device.network.wifi.raw"],
            "network_monitoring",
            {"postgres", "table"},
        ),
        "warehouse/transcribed_words": (
            ["kafka/media.text.transcribed.words"],
            "audio_processing",
            {"postgres", "table"},
        ),
    }
    specs = _specs(translated)
    actual = {key: (_deps(s), s.group_name, set(s.kinds)) for key, s in specs.items()}
    assert actual == expected


def test_topic_metadata_and_tags(translated: TranslatedRegistry) -> None:
    specs = _specs(translated)
    raw = specs["kafka/device.audio.raw"]
    assert raw.description == "Raw audio chunks from devices"
    assert raw.metadata == {"partitions": 3, "retention_days": 7}
    assert raw.tags == {
        "category": "device",
        "source": "audio",
        "datatype": "raw",
        "dagster/kind/kafka": "",
    }
    vad = specs["kafka/media.audio.vad_filtered"]
    assert vad.metadata["stage"] == "vad-processing"
    assert vad.metadata["service"] == "silero-vad"
    assert vad.metadata["flow"] == "audio-processing"
    assert "role" not in vad.metadata  # "output" is the default for a topic a stage writes
    assert specs["kafka/errors.audio.vad"].metadata["role"] == "error"
    assert "retention_days" not in vad.metadata
    assert set(vad.metadata) == {"partitions", "stage", "service", "flow"}
    orphan = specs["kafka/media.text.transcribed.words"]
    assert orphan.metadata["stage"] == "speech-to-text"


def test_api_endpoint_spec(translated: TranslatedRegistry) -> None:
    api = _specs(translated)["api/audio/upload"]
    assert api.metadata == {}
    assert api.description == "POST /audio/upload produces into device.audio.raw"


COLUMNS = [
    ("device_id", "string", False, None),
    ("recorded_at", "timestamp", False, None),
    ("ssid", "string", True, "from payload.ssid"),
    ("signal_dbm", "integer", True, "from payload.rssi"),
    ("first_tag", "string", True, "from payload.tags[0]"),
    ("payload", "json", True, None),
]


def test_table_spec(translated: TranslatedRegistry) -> None:
    wifi = _specs(translated)["warehouse/device_network_wifi_raw"]
    schema = wifi.metadata["dagster/column_schema"]
    assert [
        (c.name, c.type, c.constraints.nullable, c.description) for c in schema.columns
    ] == COLUMNS
    assert wifi.metadata == {
        "dagster/column_schema": schema,
        "dagster/table_name": "device_network_wifi_raw",
        "mode": "upsert on device_id, recorded_at",
        "time_column": "recorded_at",
    }
    assert wifi.description == "Ingested from Kafka topic device.network.wifi.raw"
    assert wifi.freshness_policy is not None
    assert wifi.freshness_policy.fail_window.to_timedelta() == timedelta(minutes=15)
    assert wifi.freshness_policy.warn_window.to_timedelta() == timedelta(minutes=7, seconds=30)
    checks = {(c.asset_key.to_user_string(), c.name): c for c in translated.table_checks}
    wifi_checks = sorted(n for k, n in checks if k == "warehouse/device_network_wifi_raw")
    assert wifi_checks == ["dead_letter_ratio", "max_lag_messages", "retention_loss"]
    lag = checks[("warehouse/device_network_wifi_raw", "max_lag_messages")]
    assert lag.description is not None and "WARN above 50000, ERROR above 100000" in lag.description
    words_checks = sorted(n for k, n in checks if k == "warehouse/transcribed_words")
    assert words_checks == ["dead_letter_ratio", "retention_loss", "rows_growing"]
    words = _specs(translated)["warehouse/transcribed_words"]
    assert words.metadata["mode"] == "append"
    assert words.freshness_policy is None
    assert {t.key.to_user_string(): t.topic.name for t in translated.tables} == {
        "warehouse/device_audio_raw": "device.audio.raw",
        "warehouse/device_network_wifi_raw": "device.network.wifi.raw",
        "warehouse/transcribed_words": "media.text.transcribed.words",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("audio-processing", "audio_processing"),
        ("a.b-c", "a_b_c"),
        ("--", "_"),
        ("Plain_1", "Plain_1"),
    ],
)
def test_group_names_are_valid(name: str, expected: str) -> None:
    assert dagster_name(name) == expected


def test_colliding_flow_groups_get_suffixes(document: RegistryDocument) -> None:
    flows = (
        document.flows[0],
        document.flows[0].model_copy(update={"name": "audio.processing", "stages": ()}),
    )
    translated = RegistryTranslator().translate(document.model_copy(update={"flows": flows}))
    assert translated.flow_groups == {
        "audio-processing": "audio_processing",
        "audio.processing": "audio_processing_2",
    }


def test_bad_records_are_skipped_and_reported(document: RegistryDocument) -> None:
    """A hand-edited registry: unknown upstream topic, a cycle, a duplicate table."""
    flow = document.flows[0]
    bad_stage = flow.stages[0].model_copy(
        update={"inputs": ("device.audio.raw", "ghost.topic", "media.text.transcribed.words")}
    )
    twin = document.topics[0].model_copy(update={"name": "device.audio.twin"})
    broken = document.model_copy(
        update={
            "topics": (*document.topics, twin),
            "flows": (flow.model_copy(update={"stages": (bad_stage, *flow.stages[1:])}),),
        }
    )
    translated = RegistryTranslator().translate(broken)
    reasons = [str(record) for record in translated.skipped]
    assert any("ghost.topic" in r for r in reasons)
    assert any("cycle" in r for r in reasons)
    assert any("device.audio.twin" in r and "another topic" in r for r in reasons)
    # The definitions still load.
    keys = {s.key.to_user_string() for s in translated.external_specs}
    assert "kafka/device.audio.twin" in keys
    assert len(translated.tables) == 3
    dg.Definitions(
        assets=[*translated.external_specs, *translated.table_specs]
    ).resolve_asset_graph()


class _FailingTranslator(RegistryTranslator):
    def get_topic_spec(self, topic, links, group_name):  # type: ignore[no-untyped-def]
        if topic.name == "errors.audio.vad":
            raise RuntimeError("boom")
        return super().get_topic_spec(topic, links, group_name)


def test_one_failing_record_does_not_take_the_location_down(document: RegistryDocument) -> None:
    translated = _FailingTranslator().translate(document)
    assert [str(r) for r in translated.skipped] == ["topic 'errors.audio.vad': RuntimeError: boom"]
    assert len(translated.topic_specs) == 4


class _TaggingTranslator(RegistryTranslator):
    """Changes only the tags: every other part of every spec stays the default."""

    def get_table_tags(self, topic, table):  # type: ignore[no-untyped-def]
        return {"team": "audio", "topic": topic.name.replace(".", "_")}

    def get_topic_tags(self, topic):  # type: ignore[no-untyped-def]
        return {**super().get_topic_tags(topic), "owner": "platform"}


def _user_tags(spec: dg.AssetSpec) -> dict[str, str]:
    return {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")}


def test_a_subclass_changes_only_tags(document: RegistryDocument) -> None:
    default = RegistryTranslator().translate(document)
    tagged = _TaggingTranslator().translate(document)
    for before, after in zip(default.table_specs, tagged.table_specs, strict=True):
        topic = after.deps[0].asset_key.path[-1]
        assert _user_tags(after) == {"team": "audio", "topic": topic.replace(".", "_")}
        assert _user_tags(before) == {}
        assert after.replace_attributes(tags=before.tags) == before
    for before, after in zip(default.topic_specs, tagged.topic_specs, strict=True):
        assert _user_tags(after) == {**_user_tags(before), "owner": "platform"}
        assert after.metadata == before.metadata
        assert after.replace_attributes(tags=before.tags) == before
    assert tagged.api_specs == default.api_specs
    assert tagged.table_checks == default.table_checks
    dg.Definitions(assets=[*tagged.external_specs, *tagged.table_specs]).resolve_asset_graph()
