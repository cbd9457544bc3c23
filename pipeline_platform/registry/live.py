"""The live registry as long-running readers (the HTTP API, monitoring) see it, cached briefly.

:class:`LiveRegistry` re-reads the revision and the content fingerprint at most every ``ttl``
seconds and the whole document only when one of them changed, so answering a request usually
costs nothing; answers computed from one view can be memoized on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from pipeline_platform.registry.document import RegistryDocument

logger = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """The registry database cannot be read (one-line, password-free reason)."""


@dataclass
class RegistryView:
    """One read of the registry: its document, revision, fingerprint and left-out rows."""

    document: RegistryDocument
    revision: int
    fingerprint: str
    problems: tuple[str, ...] = ()
    _answers: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Return ``compute()`` for ``key``, computed once per view."""
        try:
            return self._answers[key]
        except KeyError:
            pass
        value = compute()
        with self._lock:
            self._answers.setdefault(key, value)
        return value


def one_line(error: BaseException) -> str:
    """Return the first line of an error's message, without the SQL statement."""
    message = str(getattr(error, "orig", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__


class LiveRegistry:
    """Reads the registry at most every ``ttl`` seconds; thread safe."""

    def __init__(self, engine: Engine, ttl: float = 2.0) -> None:
        """Keep the engine; nothing is read yet."""
        self.engine = engine
        self.ttl = ttl
        self._view: RegistryView | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def view(self, *, fresh: bool = False) -> RegistryView:
        """Return the current view, re-checking the database when older than ``ttl``.

        Args:
            fresh: Re-check now and wait for it (after a reload, say).

        Raises:
            RegistryUnavailable: when the registry cannot be read.
        """
        view = self._view
        if view is not None and not fresh and time.monotonic() - self._checked < self.ttl:
            return view
        # While one caller re-checks, the others keep answering from the previous view.
        if view is not None and not fresh and not self._lock.acquire(blocking=False):
            return view
        if view is None or fresh:
            self._lock.acquire()
        try:
            stale = time.monotonic() - self._checked >= self.ttl
            if fresh or self._view is None or stale:
                self._view = self._read(self._view)
                self._checked = time.monotonic()
            return self._view
        finally:
            self._lock.release()

    def _read(self, previous: RegistryView | None) -> RegistryView:
        from pipeline_platform.registry.fingerprint import content_fingerprint
        from pipeline_platform.registry.models import registry_revisions
        from pipeline_platform.registry.store import read_document

        try:
            with self.engine.connect() as connection:
                revision = int(
                    connection.execute(
                        text(f"SELECT max(revision) FROM {registry_revisions.name}")
                    ).scalar()
                    or 0
                )
                fingerprint = content_fingerprint(connection)
                if (
                    previous is not None
                    and previous.revision == revision
                    and previous.fingerprint == fingerprint
                ):
                    return previous
                problems: list[str] = []
                document = read_document(connection, problems)
        except SQLAlchemyError as error:
            raise RegistryUnavailable(f"registry unavailable: {one_line(error)}") from None
        return RegistryView(document, revision, fingerprint, tuple(problems))

    def current(self) -> RegistryView | None:
        """Return the cached view without waiting (None before the first read).

        A stale view is still returned; one background thread re-checks the database meanwhile,
        so an event loop can serve from here without blocking.
        """
        view = self._view
        stale = view is not None and time.monotonic() - self._checked >= self.ttl
        if stale and self._lock.acquire(blocking=False):
            threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return view

    def _refresh_in_background(self) -> None:
        try:
            self._view = self._read(self._view)
        except RegistryUnavailable as error:
            logger.warning("%s; serving the registry as last read", error)
        finally:
            self._checked = time.monotonic()
            self._lock.release()

    def ping(self) -> None:
        """Check that the registry answers.

        Raises:
            RegistryUnavailable: when it does not.
        """
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            raise RegistryUnavailable(f"registry unavailable: {one_line(error)}") from None
