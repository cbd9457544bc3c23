"""The live registry cache: re-checked after its TTL, in the background for an event loop."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.document import Topic
from pipeline_platform.registry.live import LiveRegistry
from pipeline_platform.registry.store import import_document
from pipeline_platform.registry.validation import load_document

SMALL = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"


def test_views_follow_changes_after_the_ttl(sqlite_url: str) -> None:
    engine = create_registry_engine(sqlite_url)
    upgrade_registry(engine)
    document = load_document(SMALL)
    import_document(engine, document, actor="a")
    live = LiveRegistry(engine, ttl=0.2)
    assert live.current() is None  # nothing read yet: callers must wait for view()
    first = live.view()
    assert first.revision == 1 and live.view() is first
    assert first.memo("k", lambda: object()) is first.memo("k", lambda: object())

    extra = Topic(name="device.extra.raw")
    import_document(
        engine, document.model_copy(update={"topics": (*document.topics, extra)}), actor="b"
    )
    assert live.view() is first  # within the TTL
    time.sleep(0.25)
    assert live.current() is first  # stale view served while a thread re-checks
    deadline = time.monotonic() + 5
    while live.current() is first and time.monotonic() < deadline:
        time.sleep(0.02)
    second = live.current()
    assert second is not None and second.revision == 2
    assert second.document.topic("device.extra.raw") is not None
    assert second.fingerprint != first.fingerprint
    time.sleep(0.25)
    assert live.view() is second  # unchanged registry: the same view, answers kept
    engine.dispose()
