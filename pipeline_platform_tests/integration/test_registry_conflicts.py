"""Concurrent registry writers: a change computed from a stale read never undoes another one.

On SQLite and on a real PostgreSQL server: ``import_document(base_revision=...)`` refuses a
document computed from an older revision, an import committed between its read and its write
is refused by the revision's primary key (also while that import is still in progress), and
``pause`` / ``resume`` read again and retry instead of writing back a stale registry; the
command line reports a conflict in one line with exit code 1.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from pipeline_platform.cli.main import main
from pipeline_platform.registry import controls
from pipeline_platform.registry.controls import ATTEMPTS, set_paused
from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.models import registry_revisions
from pipeline_platform.registry.store import (
    RevisionConflictError,
    history,
    import_document,
    read_document,
)
from pipeline_platform.registry.store import write as store_write
from pipeline_platform.registry.validation import load_document
from pipeline_platform.registry.yaml_io import dump_document
from pipeline_platform_tests.integration.registry_tables import SMALL, dump_tables, with_topic

TABLE_TOPIC = "device.network.wifi.raw"  # a topic with a table in the small registry


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated registry holding the small fixture registry as revision 1."""
    engine = create_registry_engine(database_url)
    upgrade_registry(engine)
    import_document(engine, load_document(SMALL), actor="alice")
    yield engine
    engine.dispose()


def _partitions(engine: Engine, topic: str) -> int:
    found = read_document(engine).topic(topic)
    assert found is not None
    return found.partitions


def _import_partitions(engine: Engine, partitions: int) -> None:
    """Another writer's import: the wifi topic gets ``partitions`` partitions."""
    changed = with_topic(read_document(engine), TABLE_TOPIC, partitions=partitions)
    assert import_document(engine, changed, actor="other").revision is not None


def test_a_stale_base_revision_is_refused_and_writes_nothing(engine: Engine) -> None:
    _import_partitions(engine, 5)  # revision 2 lands after a reader saw revision 1
    stale = with_topic(load_document(SMALL), "errors.audio.vad", partitions=2)
    before = dump_tables(engine)
    for dry_run in (False, True):
        with pytest.raises(RevisionConflictError, match=r"^the registry changed meanwhile: it is "
                           r"at revision 2, the change was computed from revision 1; nothing "
                           r"written, try again$"):  # fmt: skip
            import_document(engine, stale, actor="bob", base_revision=1, dry_run=dry_run)
    assert dump_tables(engine) == before
    fresh = with_topic(read_document(engine), "errors.audio.vad", partitions=2)
    assert import_document(engine, fresh, actor="bob", base_revision=2).revision == 3
    assert _partitions(engine, TABLE_TOPIC) == 5


def test_an_import_from_a_stale_state_fails_and_writes_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump_tables(engine)
    real_read_state = store_write.read_state

    def stale(connection: Any) -> Any:
        # What a concurrent importer that read the registry before revision 1 would see.
        state = real_read_state(connection)
        return dataclasses.replace(state, revision=state.revision - 1)

    monkeypatch.setattr(store_write, "read_state", stale)
    changed = with_topic(load_document(SMALL), "errors.audio.vad", partitions=2)
    with pytest.raises(RevisionConflictError, match="recorded as registry revision 1 meanwhile"):
        import_document(engine, changed, actor="bob")
    assert dump_tables(engine) == before


def _after_read_state(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Run ``hook`` once, right after an import has read the stored state (its check is next)."""
    real_read_state = store_write.read_state
    calls: list[None] = []

    def read_then_hook(connection: Any) -> Any:
        state = real_read_state(connection)
        if not calls:
            calls.append(None)
            hook()
        return state

    monkeypatch.setattr(store_write, "read_state", read_then_hook)


def test_an_import_committed_between_check_and_write_is_kept(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _after_read_state(monkeypatch, lambda: _import_partitions(engine, 7))
    changed = with_topic(load_document(SMALL), "errors.audio.vad", partitions=2)
    with pytest.raises(RevisionConflictError, match="revision 2 meanwhile"):
        import_document(engine, changed, actor="bob", base_revision=1)
    assert _partitions(engine, TABLE_TOPIC) == 7
    assert _partitions(engine, "errors.audio.vad") != 2
    assert [(r.revision, r.actor) for r in history(engine)] == [(2, "other"), (1, "alice")]


def test_an_import_in_progress_makes_the_write_wait_then_refuses_it(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = create_registry_engine(database_url)
    in_progress = other.connect()
    # Another writer has claimed revision 2 and not committed yet.
    in_progress.execute(
        insert(registry_revisions).values(
            revision=2, created_at=datetime.now(UTC), actor="other", summary="{}"
        )
    )
    read = threading.Event()
    _after_read_state(monkeypatch, read.set)
    outcome: list[BaseException | int | None] = []

    def write() -> None:
        changed = with_topic(load_document(SMALL), "errors.audio.vad", partitions=2)
        try:
            outcome.append(import_document(engine, changed, actor="bob", base_revision=1).revision)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert read.wait(30)
        time.sleep(0.5)  # the writer checked revision 1 and now waits on revision 2's key
        assert outcome == []
        in_progress.commit()
    finally:
        writer.join(30)
        in_progress.close()
        other.dispose()
    [result] = outcome
    assert isinstance(result, RevisionConflictError)
    assert _partitions(engine, "errors.audio.vad") != 2
    assert [r.actor for r in history(engine)] == ["other", "alice"]


def _import_after_each_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, times: int
) -> list[int]:
    """Land another writer's import right after each of the first ``times`` reads of a pause."""
    real_read = controls.read_document_and_revision
    landed: list[int] = []

    def read_then_import(bind: Engine) -> tuple[RegistryDocument, int]:
        found = real_read(bind)
        if len(landed) < times:
            landed.append(10 + len(landed))
            _import_partitions(engine, landed[-1])
        return found

    monkeypatch.setattr(controls, "read_document_and_revision", read_then_import)
    return landed


def test_pause_does_not_undo_an_import_landing_between_its_read_and_write(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    landed = _import_after_each_read(engine, monkeypatch, times=1)
    result = set_paused(engine, TABLE_TOPIC, True, actor="ops")
    assert landed == [10] and result.revision == 3
    topic = read_document(engine).topic(TABLE_TOPIC)
    assert topic is not None and (topic.active, topic.partitions) == (False, 10)
    revisions = [(r.revision, r.actor, r.source) for r in history(engine)]
    assert revisions[:2] == [(3, "ops", f"pause {TABLE_TOPIC}"), (2, "other", None)]


def test_pause_gives_up_with_one_line_when_the_registry_keeps_moving(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    landed = _import_after_each_read(engine, monkeypatch, times=ATTEMPTS)
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", database_url)
    capsys.readouterr()
    assert main(["pause", "daily-sales-sync"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the registry changed meanwhile")
    assert len(landed) == ATTEMPTS
    assert read_document(engine).pipelines[0].status == "active"
    assert [r.actor for r in history(engine)] == ["other"] * ATTEMPTS + ["alice"]


@pytest.mark.parametrize("command", ["import", "rollback"])
def test_registry_import_and_rollback_report_a_concurrent_revision_in_one_line(
    engine: Engine,
    database_url: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _import_partitions(engine, 5)  # revision 2, so a rollback to 1 has something to write
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(
        dump_document(with_topic(load_document(SMALL), "errors.audio.vad", partitions=2))
    )
    argv = {"import": [str(registry_file)], "rollback": ["1"]}[command]
    monkeypatch.setenv("PIPELINE_REGISTRY_URL", database_url)
    _after_read_state(monkeypatch, lambda: _import_partitions(engine, 6))
    capsys.readouterr()
    assert main(["registry", command, *argv]) == 1
    assert capsys.readouterr().err == (
        "error: another change was recorded as registry revision 3 meanwhile; "
        "nothing written, try again\n"
    )
    assert _partitions(engine, TABLE_TOPIC) == 6
    assert _partitions(engine, "errors.audio.vad") != 2
    assert [r.actor for r in history(engine)] == ["other", "other", "alice"]
