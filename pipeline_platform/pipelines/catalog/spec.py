"""The shape of a catalog module and the JSON Schema building blocks the modules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ModuleKind = Literal["extractor", "transformer", "loader"]

DOCS_BASE = "docs/pipelines.md"
LOGICAL_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "json", "uuid")
SQL_KINDS = ("postgresql", "timescaledb", "sqlite")

IDENT: dict[str, Any] = {"type": "string", "pattern": r"^[a-z_][a-z0-9_]{0,62}$"}
COLUMNS: dict[str, Any] = {"type": "array", "items": IDENT, "minItems": 1, "uniqueItems": True}
PATH: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 1024}
CHUNK_SIZE: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10_000_000}


def obj(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """Return a closed JSON Schema object with ``properties`` and ``required`` keys."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        **extra,
    }


@dataclass(frozen=True)
class ModuleSpec:
    """A module of the catalog, with the fields users of the old pipeline builder know.

    Attributes:
        name: Module name used by pipeline nodes.
        kind: ``extractor``, ``transformer`` or ``loader``.
        description: What the module does.
        config_schema: JSON Schema of the node ``config``.
        display_name: Human name shown in lists.
        category: ``database``, ``file``, ``rows``, ``columns`` or ``combine``.
        version: Module version (semantic).
        icon: Icon name (Material Symbols).
        tags: Free tags for search.
        connections: Data-source kinds the module's ``data_source`` may be (empty: no data source).
        input_schema: The columns the module needs from its input (JSON, where known).
        output_schema: The columns the module produces (JSON, where known).
        inputs: How many upstream nodes the module takes (0 for extractors).
    """

    name: str
    kind: ModuleKind
    description: str
    config_schema: dict[str, Any]
    display_name: str = ""
    category: str = ""
    version: str = "1.0.0"
    icon: str = ""
    tags: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] = field(default_factory=dict)
    inputs: int = 1

    @property
    def documentation_url(self) -> str:
        """Where the module is documented: its section of docs/pipelines.md in this project."""
        return f"{DOCS_BASE}#{self.name}"
