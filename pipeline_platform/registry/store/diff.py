"""Diffing two registry documents entity by entity (what an import changes)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline_platform.registry.document import Record, RegistryDocument

KINDS = ("topics", "flows", "data_sources", "presets", "pipelines")
"""The top-level sections of a registry document, in document order."""

KIND_LABELS = {
    "topics": "topic",
    "flows": "flow",
    "data_sources": "data_source",
    "presets": "preset",
    "pipelines": "pipeline",
}


@dataclass(frozen=True)
class KindDiff:
    """Differences of one kind of entity (topics, flows, data sources or pipelines).

    Attributes:
        added: Names present only in the new document, sorted.
        changed: Name → top-level fields (YAML keys) that differ, sorted by name.
        removed: Names present only in the old document, sorted.
    """

    added: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing was added, changed or removed."""
        return not (self.added or self.changed or self.removed)


@dataclass(frozen=True)
class RegistryDiff:
    """What an import changes, per kind of entity."""

    topics: KindDiff = KindDiff()
    flows: KindDiff = KindDiff()
    data_sources: KindDiff = KindDiff()
    presets: KindDiff = KindDiff()
    pipelines: KindDiff = KindDiff()

    def kinds(self) -> Iterator[tuple[str, KindDiff]]:
        """Yield ``(kind, diff)`` for every kind, in document order."""
        for kind in KINDS:
            yield kind, getattr(self, kind)

    @property
    def is_empty(self) -> bool:
        """True when the two documents are the same registry."""
        return all(diff.is_empty for _, diff in self.kinds())

    def lines(self) -> list[str]:
        """Return readable lines: ``+ topic x``, ``~ topic y: table, schema``, ``- flow z``."""
        out: list[str] = []
        for kind, diff in self.kinds():
            label = KIND_LABELS[kind]
            out.extend(f"+ {label} {name}" for name in diff.added)
            out.extend(
                f"~ {label} {name}: {', '.join(fields)}" for name, fields in diff.changed.items()
            )
            out.extend(f"- {label} {name}" for name in diff.removed)
        return out

    def summary(self) -> dict[str, Any]:
        """Return the diff as JSON-able data (stored with each registry revision)."""
        return {
            kind: {
                "added": list(diff.added),
                "changed": {name: list(fields) for name, fields in diff.changed.items()},
                "removed": list(diff.removed),
            }
            for kind, diff in self.kinds()
        }


def _changed_fields(old: Record, new: Record) -> tuple[str, ...]:
    fields: list[str] = []
    for name, info in type(old).model_fields.items():
        if getattr(old, name) != getattr(new, name):
            fields.append(info.alias or name)
    return tuple(fields)


def _diff_kind(old: Sequence[Any], new: Sequence[Any]) -> KindDiff:
    before = {item.name: item for item in old}
    after = {item.name: item for item in new}
    changed: dict[str, tuple[str, ...]] = {}
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            changed[name] = _changed_fields(before[name], after[name])
    return KindDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        changed=changed,
        removed=tuple(sorted(before.keys() - after.keys())),
    )


def diff_documents(old: RegistryDocument, new: RegistryDocument) -> RegistryDiff:
    """Compare two registry documents entity by entity (matched by name).

    Args:
        old: The registry as it is.
        new: The registry as it should be.

    Returns:
        Added, changed (with the top-level fields that changed) and removed names per kind.
    """
    return RegistryDiff(
        **{kind: _diff_kind(getattr(old, kind), getattr(new, kind)) for kind in KINDS}
    )
