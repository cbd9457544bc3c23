"""Forked worker processes (``pipeline_platform.ingestion.processes``): real forks, no servers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_platform.ingestion.processes import WorkerExited, forked_map
from pipeline_platform_tests.e2e.processes import wait_gone


class Unpicklable(Exception):
    """An error that cannot cross a pipe (its argument holds a lock)."""

    def __init__(self) -> None:
        import threading

        super().__init__("holds a lock")
        self.lock = threading.Lock()


def square_in_child(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_every_item_is_worked_in_a_child_and_announced_in_the_parent() -> None:
    started: list[int] = []
    outcomes = dict(forked_map(square_in_child, list(range(7)), 2, on_start=started.append))
    assert sorted(started) == list(range(7))
    assert {n: value[0] for n, value in outcomes.items()} == {n: n * n for n in range(7)}  # type: ignore[index]
    pids = {value[1] for value in outcomes.values()}  # type: ignore[index]
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2  # two workers served all seven items


def test_errors_come_back_as_values_with_their_type_and_message() -> None:
    def work(n: int) -> int:
        if n == 1:
            raise ValueError("bad item 1")
        if n == 2:
            raise Unpicklable()
        return n

    outcomes = dict(forked_map(work, [0, 1, 2, 3], 2))
    assert outcomes[0] == 0 and outcomes[3] == 3
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "bad item 1"
    assert isinstance(outcomes[2], RuntimeError)
    assert str(outcomes[2]) == "Unpicklable: holds a lock"


def test_a_worker_that_dies_fails_its_item_only_and_is_replaced() -> None:
    def work(n: int) -> int:
        if n == 2:
            os._exit(3)
        return n

    outcomes = dict(forked_map(work, list(range(6)), 2))
    assert isinstance(outcomes[2], WorkerExited)
    assert "exited with code 3" in str(outcomes[2])
    assert {n: v for n, v in outcomes.items() if n != 2} == {0: 0, 1: 1, 3: 3, 4: 4, 5: 5}


def test_workers_drop_the_dagster_log_handlers_of_the_parent() -> None:
    from dagster._core.log_manager import DagsterLogHandler

    logger = logging.getLogger("pipeline_platform.test_processes")
    handler = DagsterLogHandler({}, [], [])  # type: ignore[typeddict-item]
    logger.addHandler(handler)
    try:

        def handlers_in_child(name: str) -> list[str]:
            return [type(h).__name__ for h in logging.getLogger(name).handlers]

        [(_, in_child)] = list(forked_map(handlers_in_child, [logger.name], 1))
        assert in_child == []
        assert logger.handlers == [handler]
    finally:
        logger.removeHandler(handler)


def test_closing_early_terminates_busy_workers(tmp_path: Path) -> None:
    """Even when the parent turns SIGTERM into an exception (as a Dagster run worker does)."""
    pids = tmp_path / "pids"

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        _close_early(pids)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _close_early(pids: Path) -> None:

    def slow(n: int) -> int:
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        if n > 0:
            time.sleep(60)
        return n

    outcomes = forked_map(slow, [0, 1, 2], 2)
    assert next(outcomes) == (0, 0)
    started = time.monotonic()
    outcomes.close()
    assert time.monotonic() - started < 10
    for pid in {int(p) for p in pids.read_text().split()}:
        assert not wait_gone({pid}, 5), pid


def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, sys, time\n"
        "from pipeline_platform.ingestion.processes import forked_map\n"
        "def work(n):\n"
        f"    open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "    time.sleep(60)\n"
        "for _ in forked_map(work, [1, 2], 2):\n"
        "    pass\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not pids.exists() or len(pids.read_text().split()) < 2
        ):
            time.sleep(0.05)
        children = [int(p) for p in pids.read_text().split()]
        assert len(children) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        for pid in children:
            assert not wait_gone({pid}, 5), f"worker {pid} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
