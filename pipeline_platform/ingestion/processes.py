"""Forked worker processes: ingestion work outside one GIL.

Decoding, validation and mapping run Python code per message, so threads of one process share
about one core. A packed run therefore hands its tables to a few worker processes, and a
one-table run its partition groups; the workers are forked once, before the parent holds a
Kafka client, each opens its own consumer and connection, and sends back only its result (or
its error).

A worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so a run worker killed with
SIGKILL leaves no ingestion behind: the killed transactions roll back and the database fencing
keeps the next run exactly once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Seconds a worker gets to end after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0

_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Whether worker processes are used on this platform.

    Linux only: fork is unsafe on macOS and absent on Windows; elsewhere callers keep threads.
    """
    return sys.platform.startswith("linux")


class WorkerExited(RuntimeError):
    """A worker process ended without returning the outcome of its item."""


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux only)."""
    if available():
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _leave_dagster_run_log() -> None:
    """Drop Dagster's log handlers inherited from a run worker; keep the rest of Python logging.

    Those handlers write events through the parent's instance connections, which a forked
    process must not use (Dagster's managed Python loggers attach them to named loggers).
    """
    log_manager = sys.modules.get("dagster._core.log_manager")
    if log_manager is None:  # the parent never loaded Dagster's logging: nothing to drop
        return
    dagster_handler = log_manager.DagsterLogHandler
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for each in loggers:
        if isinstance(each, logging.Logger):
            for handler in [h for h in each.handlers if isinstance(h, dagster_handler)]:
                each.removeHandler(handler)


def sendable(error: BaseException) -> BaseException:
    """Return ``error`` if it survives pickling, else a ``RuntimeError`` naming it in one line."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _serve(
    work: Callable[[Any], Any],
    items: Sequence[Any],
    channel: Connection,
    parent_pid: int,
) -> None:
    """Worker loop: receive an item index, send back ``(True, result)`` or ``(False, error)``."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    # The parent's handlers (Dagster turns SIGTERM into an interrupt) would keep a terminated
    # worker alive; it dies at once instead, its open transaction rolled back by the server.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _leave_dagster_run_log()
    while True:
        try:
            index = channel.recv()
        except EOFError:
            return
        if index is None:
            return
        try:
            outcome: tuple[bool, Any] = (True, work(items[index]))
        except BaseException as error:
            outcome = (False, sendable(error))
        try:
            channel.send(outcome)
        except Exception as error:  # an unpicklable result
            channel.send((False, RuntimeError(f"result could not be returned: {error}")))


class _Worker(Generic[Item, Result]):
    """One forked worker and the parent's end of its channel."""

    def __init__(
        self,
        work: Callable[[Item], Result],
        items: Sequence[Item],
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.channel, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(work, items, child_end, os.getpid()),
            name="pp-ingest-worker",
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.index: int | None = None

    def give(self, index: int) -> None:
        self.index = index
        self.channel.send(index)

    def outcome(self) -> tuple[bool, Any]:
        """The outcome of the current item (a dead worker's outcome is a ``WorkerExited``)."""
        try:
            if self.channel.poll():
                return self.channel.recv()
        except (EOFError, OSError):
            pass
        self.process.join(STOP_GRACE_SECONDS)
        return False, WorkerExited(
            f"ingestion worker process exited with code {self.process.exitcode}"
        )

    def stop(self, *, busy: bool) -> None:
        """End the worker: ask an idle one to leave, terminate a busy one."""
        if self.process.is_alive():
            if busy:
                self.process.terminate()
            else:
                with contextlib.suppress(OSError):
                    self.channel.send(None)
            self.process.join(STOP_GRACE_SECONDS)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.channel.close()


def forked_map(
    work: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    *,
    on_start: Callable[[Item], None] | None = None,
) -> Generator[tuple[Item, Result | Exception], None, None]:
    """Run ``work`` over ``items`` in at most ``workers`` forked processes; yield as they end.

    The workers are forked by the calling thread at the first ``next``; ``work`` and ``items``
    reach them by the fork (nothing is pickled on the way in), results and errors come back
    pickled. A dispatcher thread hands the next item to a worker the moment it answers, so
    the workers never wait for the caller to handle an outcome. Closing the generator early
    terminates the busy workers.

    Args:
        work: Called in a worker with one item.
        items: The items, in the order they are handed out.
        workers: Most processes at once.
        on_start: Called in the parent (dispatcher thread) with each item as a worker takes it.

    Yields:
        ``(item, result)`` or ``(item, error)`` in the order they finish. A worker that dies
        without an answer yields :class:`WorkerExited` for its item and is replaced.
    """
    if not items:
        return
    count = max(1, min(workers, len(items)))
    pool = [_Worker(work, items) for _ in range(count)]
    outcomes: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
    closing = threading.Event()
    dispatcher = threading.Thread(
        target=_dispatch,
        args=(pool, work, items, outcomes, closing, on_start),
        name="pp-ingest-dispatch",
        daemon=True,
    )
    dispatcher.start()
    try:
        for _ in items:
            index, ok, value = outcomes.get()
            if index < 0:  # the dispatcher failed
                raise value
            if not ok and not isinstance(value, Exception):  # e.g. SystemExit in ``work``
                value = RuntimeError(f"{type(value).__name__} in an ingestion worker")
            yield items[index], value
    finally:
        closing.set()
        dispatcher.join()
        for worker in pool:
            worker.stop(busy=worker.index is not None)


def _dispatch(
    pool: list[_Worker[Item, Result]],
    work: Callable[[Item], Result],
    items: Sequence[Item],
    outcomes: queue.SimpleQueue[tuple[int, bool, Any]],
    closing: threading.Event,
    on_start: Callable[[Item], None] | None,
) -> None:
    """Hand out items as workers answer; put ``(index, ok, value)`` outcomes on the queue."""
    order = iter(range(len(items)))

    def hand_out(worker: _Worker[Item, Result]) -> None:
        index = next(order, None)
        worker.index = index
        if index is not None:
            if on_start is not None:
                on_start(items[index])
            worker.give(index)

    try:
        for worker in pool:
            hand_out(worker)
        while not closing.is_set() and (busy := [w for w in pool if w.index is not None]):
            waitables: list[Any] = [w.channel for w in busy] + [w.process.sentinel for w in busy]
            ready = set(wait(waitables, timeout=0.5))
            for worker in busy:
                if worker.channel not in ready and worker.process.sentinel not in ready:
                    continue
                index = worker.index
                assert index is not None
                ok, value = worker.outcome()
                worker.index = None
                if not worker.process.is_alive():
                    logger.warning("worker %s exited; forking another", worker.process.pid)
                    worker.stop(busy=False)
                    pool[pool.index(worker)] = worker = _Worker(work, items)
                hand_out(worker)
                outcomes.put((index, ok, value))
    except BaseException as error:
        outcomes.put((-1, False, error))
