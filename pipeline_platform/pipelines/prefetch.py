"""Read ahead: produce an iterator's items in a background thread, a bounded few at a time.

The extractor's next chunk (network read, CSV parse in pyarrow, both releasing the GIL) is
fetched while the current one is transformed and written, so reading and writing overlap.
Memory stays bounded: at most ``depth`` chunks wait in the queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``items``, produced by a background thread ``depth`` ahead.

    An exception in the producer is raised in the consumer; closing the returned generator
    stops the producer at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as error:
            failure.append(error)
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()
            while True:
                try:
                    slots.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    thread = threading.Thread(target=produce, name="pipeline-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                break
            yield item  # type: ignore[misc]
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.1)
        thread.join()
