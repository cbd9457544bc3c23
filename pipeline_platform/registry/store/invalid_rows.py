"""Stored entities that no longer validate, left out of reads and rewritten by imports."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pipeline_platform.registry.document import (
    DataSource,
    Flow,
    Pipeline,
    Preset,
    Record,
    RegistryDocument,
    Topic,
)
from pipeline_platform.registry.store.diff import KIND_LABELS, KINDS, KindDiff, RegistryDiff

MODELS: dict[str, type[Record]] = {
    "topics": Topic,
    "flows": Flow,
    "data_sources": DataSource,
    "presets": Preset,
    "pipelines": Pipeline,
}


class InvalidRows:
    """Stored entities that no longer validate (a hand-written SQL edit, say), kept out of reads.

    One bad row must not take the whole registry down: the entity it belongs to is left out of
    the document and reported; an import that holds the entity rewrites it whole.
    """

    def __init__(self) -> None:
        self.reasons: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}

    def check(
        self, out: list[Any], kind: str, name: str, model: type[Record], data: dict[str, Any]
    ) -> None:
        """Validate ``data`` as ``model`` into ``out``, or record why the entity is left out."""
        try:
            out.append(model.model_validate(data))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            reason = str(first["msg"]).removeprefix("Value error, ")
            self.reasons[kind][name] = f"{where}: {reason}" if where else reason

    def problems(self) -> list[str]:
        """One line per left-out entity: ``topic 'x' skipped: table.mappings.2.type: ...``."""
        return [
            f"{KIND_LABELS[kind]} {name!r} skipped: invalid registry row ({reason})"
            for kind in KINDS
            for name, reason in sorted(self.reasons[kind].items())
        ]

    def repair(self, diff: RegistryDiff, new: RegistryDocument) -> RegistryDiff:
        """Make ``diff`` rewrite (or remove) every left-out entity instead of adding it again."""
        kinds: dict[str, KindDiff] = {}
        for kind, kind_diff in diff.kinds():
            bad = self.reasons[kind]
            if not bad:
                kinds[kind] = kind_diff
                continue
            wanted = {item.name for item in getattr(new, kind)}
            fields = MODELS[kind].model_fields.items()
            every_field = tuple(info.alias or name for name, info in fields)
            changed = dict(kind_diff.changed)
            changed.update({name: every_field for name in bad if name in wanted})
            kinds[kind] = KindDiff(
                added=tuple(n for n in kind_diff.added if n not in bad),
                changed=dict(sorted(changed.items())),
                removed=tuple(sorted({*kind_diff.removed, *(n for n in bad if n not in wanted)})),
            )
        return RegistryDiff(**kinds)
