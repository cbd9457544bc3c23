"""Load the registry snapshot for one definitions load.

Order of preference:

1. During reconstruction (run and step workers): the snapshot the code server captured, handed
   back by Dagster — the registry is not queried again. A reconstruction without that metadata
   in a process that already read the registry (the ``dagster asset materialize`` CLI loads the
   code, then reconstructs it to execute) reuses the snapshot this process read.
2. The registry itself (:func:`read_registry`, the one function that touches the database), after
   which the snapshot is written to disk as the last good one.
3. When the registry is unreachable: the last good snapshot on disk, marked as a fallback with a
   warning that the UI shows; with no snapshot either, :class:`RegistryUnavailableError`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from pipeline_platform.config import Settings, read_environment
from pipeline_platform.factory import reconstruction
from pipeline_platform.factory.snapshot import (
    RegistrySnapshot,
    read_last_good,
    snapshot_path,
    write_last_good,
)
from pipeline_platform.registry.document import RegistryDocument

logger = logging.getLogger(__name__)

RECONSTRUCTION_KEY = "pipeline_platform/registry_snapshot"


#: Per process: the payload of the last snapshot read from the registry (by registry location),
#: and the snapshot of the last payload restored (decoding and validating it again costs time).
_LAST_READ: dict[str, str] = {}
_RESTORED: dict[str, RegistrySnapshot] = {}


class RegistryUnavailableError(RuntimeError):
    """The registry cannot be read and there is no last good snapshot to fall back to."""


def redact_url(url: str) -> str:
    """Return a database URL with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def registry_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the registry YAML file named by ``PIPELINE_REGISTRY_FILE`` (dev/test), if any."""
    return read_environment(environ).registry_file


def registry_revision(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Return the current registry revision, recording SQL edits first (see ``sql_edits``).

    Cheap when nothing changed: one revision row and the content fingerprint.

    Args:
        settings: Runtime settings (registry URL).
        environ: Environment to read ``PIPELINE_REGISTRY_FILE`` from.

    Returns:
        The revision number as text, or ``file:<hash>`` for a registry file.
    """
    path = registry_file(environ)
    if path is not None:
        return _file_revision(path.read_bytes())
    from pipeline_platform.registry.database import create_registry_engine
    from pipeline_platform.registry.sql_edits import record_sql_edits

    engine = create_registry_engine(settings.registry_url)
    try:
        # Edits made directly in SQL become a revision (actor ``sql``) here, so they reload too.
        return str(record_sql_edits(engine))
    finally:
        engine.dispose()


def read_registry(settings: Settings, environ: Mapping[str, str] | None = None) -> RegistrySnapshot:
    """Read the registry (the only place a definitions load queries it).

    Args:
        settings: Runtime settings (registry URL).
        environ: Environment to read ``PIPELINE_REGISTRY_FILE`` from.

    Returns:
        A fresh snapshot of origin ``registry`` or ``file``.
    """
    path = registry_file(environ)
    if path is not None:
        from pipeline_platform.registry.validation import load_document

        revision = _file_revision(path.read_bytes())
        return RegistrySnapshot(load_document(path), revision=revision, origin="file")
    from pipeline_platform.registry.database import create_registry_engine, current_revision
    from pipeline_platform.registry.store import read_document

    engine = create_registry_engine(settings.registry_url)
    try:
        # Revision first: a change landing in between only causes one extra reload.
        revision = str(current_revision(engine))
        problems: list[str] = []
        document: RegistryDocument = read_document(engine, problems)
    finally:
        engine.dispose()
    for problem in problems:
        logger.warning("Registry: %s", problem)
    return RegistrySnapshot(
        document, revision=revision, origin="registry", problems=tuple(problems)
    )


def load_snapshot(settings: Settings, environ: Mapping[str, str] | None = None) -> RegistrySnapshot:
    """Return the snapshot for this definitions load (see the module docstring for the order).

    Args:
        settings: Runtime settings (registry URL, state directory).
        environ: Environment to read ``PIPELINE_REGISTRY_FILE`` from.

    Returns:
        The snapshot to translate.

    Raises:
        RegistryUnavailableError: The registry is unreachable and no last good snapshot exists.
    """
    payload = reconstruction.recalled_payload(RECONSTRUCTION_KEY)
    location = _location(settings, environ)
    if payload is None and reconstruction.is_reconstruction():
        payload = _LAST_READ.get(location)
    if payload is not None:
        snapshot = _RESTORED.get(payload) or RegistrySnapshot.from_payload(payload)
        _RESTORED.clear()
        _RESTORED[payload] = snapshot
        reconstruction.remember_payload(RECONSTRUCTION_KEY, payload)
        return snapshot

    try:
        snapshot = read_registry(settings, environ)
    except Exception as error:
        snapshot = _fallback(settings, environ, error)
    else:
        try:
            write_last_good(snapshot, settings.state_dir)
        except OSError:
            logger.warning(
                "Could not write the registry snapshot to %s",
                snapshot_path(settings.state_dir),
                exc_info=True,
            )
    payload = snapshot.to_payload()
    _LAST_READ[location] = payload
    _RESTORED.clear()
    _RESTORED[payload] = snapshot
    reconstruction.remember_payload(RECONSTRUCTION_KEY, payload)
    return snapshot


def _location(settings: Settings, environ: Mapping[str, str] | None) -> str:
    """Return where the registry is read from (file path or URL), to key the process memo."""
    path = registry_file(environ)
    return f"file:{path}" if path is not None else settings.registry_url


def _fallback(
    settings: Settings, environ: Mapping[str, str] | None, error: Exception
) -> RegistrySnapshot:
    path = registry_file(environ)
    where = str(path) if path is not None else redact_url(settings.registry_url)
    reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
    cached = read_last_good(settings.state_dir)
    if cached is None:
        raise RegistryUnavailableError(
            f"Cannot read the registry at {where} ({reason}) and there is no last good "
            f"snapshot at {snapshot_path(settings.state_dir)}. Fix the registry connection "
            "(PIPELINE_REGISTRY_URL) or run `pipeline-platform registry init`."
        ) from error
    warning = (
        f"Registry at {where} unreachable ({reason}); showing the last good snapshot "
        f"(revision {cached.revision}, read {cached.loaded_at}). Definitions reload when the "
        "registry is back."
    )
    logger.warning(warning)
    return cached.as_fallback(warning)


def _file_revision(content: bytes) -> str:
    return "file:" + hashlib.sha256(content).hexdigest()[:16]
