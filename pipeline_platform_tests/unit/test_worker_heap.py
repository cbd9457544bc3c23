"""A run or step worker freezes its loaded heap once; other definitions loads never do."""

import gc

import pytest

from pipeline_platform.factory import reconstruction, worker_heap


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    """Start unfrozen and leave the test process as it was (nothing stays frozen)."""
    monkeypatch.setattr(worker_heap, "_frozen", False)
    gc.unfreeze()
    yield monkeypatch
    gc.unfreeze()


def test_a_definitions_load_does_not_freeze(fresh: pytest.MonkeyPatch) -> None:
    fresh.setattr(reconstruction, "is_reconstruction", lambda: False)
    assert worker_heap.freeze_worker_heap() is False
    assert gc.get_freeze_count() == 0


def test_a_reconstruction_freezes_once(fresh: pytest.MonkeyPatch) -> None:
    fresh.setattr(reconstruction, "is_reconstruction", lambda: True)
    assert worker_heap.freeze_worker_heap() is True
    frozen = gc.get_freeze_count()
    assert frozen > 0
    allocated = [[n] for n in range(1000)]  # tracked objects allocated after the freeze
    assert worker_heap.freeze_worker_heap() is False  # a second reconstruction: no new freeze
    assert gc.get_freeze_count() == frozen
    assert allocated
