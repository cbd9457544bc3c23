"""The module reference of ``docs/pipelines.md``, generated from the catalog.

Regenerate with ``python -m pipeline_platform.pipelines.catalog.reference docs/pipelines.md``:
the text between the BEGIN/END markers is replaced; a test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES, ModuleSpec
from pipeline_platform.pipelines.catalog.presets import BUILTIN_PRESETS

BEGIN = "<!-- BEGIN MODULE REFERENCE (generated: do not edit by hand) -->"
END = "<!-- END MODULE REFERENCE -->"
_KINDS = (("extractor", "Extractors"), ("transformer", "Transformers"), ("loader", "Loaders"))


def _options(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties")
    if not properties:
        return ["- config: a condition `{column, op, value}` or a group `{all: [...]}` / "
                "`{any: [...]}` of them (see Filters above)"]  # fmt: skip
    required = set(schema.get("required", ()))
    lines = []
    for name, spec in properties.items():
        if "enum" in spec:
            kind = " | ".join(f"`{v}`" for v in spec["enum"])
        else:
            kind = spec.get("type", "any")
            kind = "/".join(kind) if isinstance(kind, list) else kind
        lines.append(f"- `{name}` ({kind}){' **required**' if name in required else ''}")
    return lines


def _module(module: ModuleSpec) -> list[str]:
    lines = [
        f"#### {module.name}",
        "",
        f"**{module.display_name}** · {module.kind} · {module.category} · v{module.version}"
        + (f" · connections: {', '.join(module.connections)}" if module.connections else ""),
        "",
        module.description,
        "",
        *_options(module.config_schema),
    ]
    for label, value in (("Needs", module.input_schema), ("Produces", module.output_schema)):
        if value:
            lines.append(f"- {label}: {value.get('columns')}")
    return [*lines, ""]


def render_reference() -> str:
    """Return the module reference (Markdown) for every catalog module and shipped preset."""
    lines: list[str] = []
    for kind, title in _KINDS:
        lines += [f"### {title}", ""]
        for module in sorted(BUILTIN_MODULES, key=lambda m: m.name):
            if module.kind == kind:
                lines += _module(module)
    lines += ["### Shipped presets", ""]
    for preset in BUILTIN_PRESETS:
        config = json.dumps(preset.config, separators=(", ", ": "))
        lines.append(f"- `{preset.name}` ({preset.module}): {preset.description}. `{config}`")
    return "\n".join(lines).rstrip() + "\n"


def replace_reference(text: str) -> str:
    """Return ``text`` with the part between the markers replaced by :func:`render_reference`."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n\n" + render_reference() + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the reference in the given Markdown file(s)."""
    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        path.write_text(replace_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
