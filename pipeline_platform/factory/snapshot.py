"""The registry snapshot the factory translates, its wire form and its on-disk cache.

The snapshot is a :class:`~pipeline_platform.registry.document.RegistryDocument` (frozen records)
plus where and when it was read. It travels to run and step workers as a compact string
(zlib-compressed JSON, base64) and is kept on disk as the *last good snapshot*, written
atomically after each successful registry read.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pipeline_platform.registry.document import RegistryDocument

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
SNAPSHOT_FILE_NAME = "registry_snapshot.json"

Origin = Literal["registry", "file", "cache"]


@dataclass(frozen=True)
class RegistrySnapshot:
    """An immutable registry document and where it came from.

    Attributes:
        document: The registry records.
        revision: The registry revision the document was read at (text; a content hash for a
            registry file).
        origin: ``registry`` (the SQL registry), ``file`` (``PIPELINE_REGISTRY_FILE``) or
            ``cache`` (the last good snapshot, because the registry was unreachable).
        loaded_at: When the document was read from its source (ISO 8601, UTC).
        warning: What the user should know about this snapshot (set for ``cache``).
        problems: Registry entities left out because their stored rows no longer validate.
    """

    document: RegistryDocument
    revision: str
    origin: Origin
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    warning: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def is_fallback(self) -> bool:
        """True when the registry was unreachable and the on-disk snapshot is used."""
        return self.origin == "cache"

    def as_fallback(self, warning: str) -> RegistrySnapshot:
        """Return this snapshot marked as the fallback, with ``warning`` for the user."""
        return replace(self, origin="cache", warning=warning)

    def to_json(self) -> str:
        """Serialize to JSON (the document with its aliases, as the YAML file spells them)."""
        header = {
            "format": SNAPSHOT_FORMAT,
            "revision": self.revision,
            "origin": self.origin,
            "loaded_at": self.loaded_at,
            "warning": self.warning,
            "problems": list(self.problems),
        }
        document = self.document.model_dump_json(by_alias=True)
        return json.dumps(header)[:-1] + ', "document": ' + document + "}"

    @classmethod
    def from_json(cls, text: str) -> RegistrySnapshot:
        """Restore a snapshot written by :meth:`to_json`.

        Raises:
            ValueError: when the text is not a snapshot of a known format.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError("not a registry snapshot of a known format")
        return cls(
            document=RegistryDocument.model_validate(data["document"]),
            revision=str(data["revision"]),
            origin=data["origin"],
            loaded_at=data["loaded_at"],
            warning=data.get("warning"),
            problems=tuple(data.get("problems") or ()),
        )

    def to_payload(self) -> str:
        """Return the compact wire form (zlib + base64 of the JSON) for reconstruction metadata."""
        return base64.b64encode(zlib.compress(self.to_json().encode(), 6)).decode("ascii")

    @classmethod
    def from_payload(cls, payload: str) -> RegistrySnapshot:
        """Restore a snapshot from :meth:`to_payload`."""
        return cls.from_json(zlib.decompress(base64.b64decode(payload)).decode())


def snapshot_path(state_dir: Path) -> Path:
    """Return where the last good snapshot is kept under ``state_dir``."""
    return state_dir / SNAPSHOT_FILE_NAME


def write_last_good(snapshot: RegistrySnapshot, state_dir: Path) -> Path:
    """Write ``snapshot`` atomically (temporary file + rename) as the last good snapshot.

    Args:
        snapshot: A snapshot just read from the registry.
        state_dir: The local state directory.

    Returns:
        The path written.
    """
    path = snapshot_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".registry_snapshot.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(snapshot.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_last_good(state_dir: Path) -> RegistrySnapshot | None:
    """Return the last good snapshot under ``state_dir``, or None when there is none usable."""
    path = snapshot_path(state_dir)
    try:
        return RegistrySnapshot.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except Exception:
        logger.warning("Ignoring unreadable registry snapshot %s", path, exc_info=True)
        return None
