"""Validation of a registry file (spec §2.1): every problem at once, each with its entry path.

Structure (types, unknown keys, identifiers) is checked entry by entry with the pydantic records,
so one bad entry does not hide the problems of the others; cross-entry rules (duplicates,
references, cycles, pipeline graphs, cron strings, module configs) run over the entries that parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from pipeline_platform.json_schemas import schema_problem
from pipeline_platform.pipelines.catalog import MODULES_BY_NAME, ModuleSpec
from pipeline_platform.pipelines.graph import check_pipeline, presets_by_name
from pipeline_platform.registry.document import (
    DataSource,
    Flow,
    Pipeline,
    Preset,
    RegistryDocument,
    Topic,
)
from pipeline_platform.registry.gc_pause import gc_paused
from pipeline_platform.registry.rules import (
    data_source_problem,
    duplicates,
    find_cycle,
    known_data_sources,
    table_identity,
    topic_edges,
    unknown_stage_topics,
)

R = TypeVar("R", bound=BaseModel)

SECTIONS: dict[str, type[BaseModel]] = {
    "topics": Topic,
    "flows": Flow,
    "data_sources": DataSource,
    "presets": Preset,
    "pipelines": Pipeline,
}
_ADAPTERS = {name: TypeAdapter(model) for name, model in SECTIONS.items()}


@dataclass(frozen=True, order=True)
class Problem:
    """One validation problem: where it is and why it is refused."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class RegistryValidationError(Exception):
    """Raised when a registry file is refused; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = tuple(problems)


def format_path(location: Iterable[str | int]) -> str:
    """Format a location such as ``("topics", 4, "table")`` as ``topics[4].table``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


# libyaml's parser when PyYAML has it: same results as yaml.SafeLoader, several times faster.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_text(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``, fast enough for registries of many topics.

    Uses libyaml when available and pauses the cyclic garbage collector while the (large,
    acyclic) result is built: collections triggered by the many new objects dominate otherwise.

    Raises:
        yaml.YAMLError: when the text is not valid YAML.
    """
    with gc_paused():
        return yaml.load(text, Loader=_SAFE_LOADER)


def read_registry_file(path: str | Path) -> Any:
    """Read a YAML registry file into plain data.

    Raises:
        RegistryValidationError: when the file cannot be read or is not valid YAML.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RegistryValidationError([Problem(str(path), f"cannot read file: {error}")]) from None
    try:
        return load_yaml_text(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise RegistryValidationError([Problem(where, f"invalid YAML: {problem}")]) from None


def _parse_entries(section: str, entries: Any, problems: list[Problem]) -> list[tuple[int, Any]]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.append(Problem(section, "must be a list"))
        return []
    parsed: list[tuple[int, Any]] = []
    adapter = _ADAPTERS[section]
    for index, entry in enumerate(entries):
        try:
            parsed.append((index, adapter.validate_python(entry)))
        except ValidationError as error:
            for item in error.errors():
                path = format_path((section, index, *item["loc"]))
                problems.append(Problem(path, _reason(item)))
    return parsed


def _raw_names(entries: Any) -> set[str]:
    if not isinstance(entries, list):
        return set()
    return {e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}


def _duplicates(items: Iterable[tuple[str, str]], what: str, problems: list[Problem]) -> None:
    for path, name, first in duplicates(items):
        problems.append(Problem(path, f"duplicate {what} {name!r} (first at {first})"))


def _check_topics(topics: list[tuple[int, Topic]], sources: set[str], out: list[Problem]) -> None:
    _duplicates(((f"topics[{i}].name", t.name) for i, t in topics), "topic", out)
    tables: list[tuple[str, str]] = []
    for i, topic in topics:
        base = f"topics[{i}]"
        if topic.json_schema is not None:
            problem = schema_problem(topic.json_schema)
            if problem is not None:
                out.append(Problem(f"{base}.schema", f"not a valid JSON Schema: {problem}"))
        _duplicates(
            (
                (f"{base}.api_endpoints[{j}]", f"{e.method} {e.path}")
                for j, e in enumerate(topic.api_endpoints)
            ),
            "API endpoint",
            out,
        )
        table = topic.table
        if table is None:
            continue
        tbase = f"{base}.table"
        if (problem := data_source_problem(table, sources)) is not None:
            out.append(Problem(f"{tbase}.data_source", problem))
        tables.append((f"{tbase}.name", table_identity(table)))
        _duplicates(
            ((f"{tbase}.mappings[{j}].column", m.column) for j, m in enumerate(table.mappings)),
            "column",
            out,
        )
        columns = set(table.columns)
        for j, key in enumerate(table.upsert_key):
            if key not in columns:
                out.append(Problem(f"{tbase}.upsert_key[{j}]", f"{key!r} is not a mapped column"))
        if len(set(table.upsert_key)) != len(table.upsert_key):
            out.append(Problem(f"{tbase}.upsert_key", "lists a column twice"))
        if table.time_column is not None and table.time_column not in columns:
            out.append(
                Problem(f"{tbase}.time_column", f"{table.time_column!r} is not a mapped column")
            )
    _duplicates(tables, "table", out)


def _check_flows(flows: list[tuple[int, Flow]], topic_names: set[str], out: list[Problem]) -> None:
    _duplicates(((f"flows[{i}].name", f.name) for i, f in flows), "flow", out)
    for i, flow in flows:
        _duplicates(
            ((f"flows[{i}].stages[{j}].name", s.name) for j, s in enumerate(flow.stages)),
            "stage",
            out,
        )
    for unknown in unknown_stage_topics(flows, topic_names):
        out.append(Problem(unknown.path, f"unknown topic {unknown.topic!r}"))
    produces = topic_edges(flow for _, flow in flows)
    cycle = find_cycle(produces)
    if cycle:
        out.append(Problem("flows", "stages form a cycle of topics: " + " -> ".join(cycle)))


def _check_presets(
    presets: list[tuple[int, Preset]], modules: Mapping[str, ModuleSpec], out: list[Problem]
) -> None:
    _duplicates(((f"presets[{i}].name", p.name) for i, p in presets), "preset", out)
    for i, preset in presets:
        module = modules.get(preset.module)
        if module is None:
            out.append(Problem(f"presets[{i}].module", f"unknown module {preset.module!r}"))
            continue
        # A preset may leave out required keys (nodes add them): check the keys it gives.
        schema = {k: v for k, v in module.config_schema.items() if k not in ("required", "then")}
        validator = jsonschema.validators.validator_for(schema)(schema)
        for error in sorted(validator.iter_errors(preset.config), key=lambda e: list(e.path)):
            if error.validator == "required":
                continue
            out.append(
                Problem(format_path((f"presets[{i}]", "config", *error.path)), error.message)
            )


def validate_data(
    data: Any, modules: Mapping[str, ModuleSpec] = MODULES_BY_NAME
) -> tuple[RegistryDocument | None, list[Problem]]:
    """Validate plain registry data (a parsed YAML file).

    Args:
        data: The parsed file.
        modules: The module catalog that pipeline nodes may use.

    Returns:
        The document (None when there are problems) and every problem found, sorted by path.
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return None, [Problem("<root>", "a registry file must be a mapping with version: 1")]
    for key in data:
        if key not in (*SECTIONS, "version"):
            problems.append(Problem(str(key), "unknown key"))
    if data.get("version", 1) != 1:
        problems.append(Problem("version", "unsupported version (expected 1)"))
    topics = _parse_entries("topics", data.get("topics"), problems)
    flows = _parse_entries("flows", data.get("flows"), problems)
    data_sources = _parse_entries("data_sources", data.get("data_sources"), problems)
    pipelines = _parse_entries("pipelines", data.get("pipelines"), problems)

    source_names = known_data_sources(_raw_names(data.get("data_sources")))
    _duplicates(
        ((f"data_sources[{i}].name", d.name) for i, d in data_sources), "data source", problems
    )
    _check_topics(topics, source_names, problems)
    _check_flows(flows, _raw_names(data.get("topics")), problems)
    _duplicates(((f"pipelines[{i}].name", p.name) for i, p in pipelines), "pipeline", problems)
    presets = _parse_entries("presets", data.get("presets"), problems)
    _check_presets(presets, modules, problems)
    preset_index = presets_by_name(tuple(p for _, p in presets))
    kinds: dict[str, str | None] = {name: None for name in source_names}
    kinds.update((d.name, d.kind) for _, d in data_sources)
    for i, pipeline in pipelines:
        for path, reason in check_pipeline(
            f"pipelines[{i}]", pipeline, kinds, preset_index, modules
        ):
            problems.append(Problem(path, reason))

    if problems:
        return None, sorted(set(problems), key=_problem_order)
    document = RegistryDocument(
        topics=tuple(t for _, t in topics),
        flows=tuple(f for _, f in flows),
        data_sources=tuple(d for _, d in data_sources),
        presets=tuple(p for _, p in presets),
        pipelines=tuple(p for _, p in pipelines),
    )
    return document, []


def _problem_order(problem: Problem) -> tuple[Any, ...]:
    # Natural order: topics[10] after topics[9].
    parts: list[Any] = []
    for chunk in problem.path.replace("]", "").split("["):
        for piece in chunk.split("."):
            parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return (parts, problem.reason)


def load_document(path: str | Path) -> RegistryDocument:
    """Read and validate a registry file.

    Raises:
        RegistryValidationError: with every problem, when the file is refused.
    """
    document, problems = validate_data(read_registry_file(path))
    if document is None:
        raise RegistryValidationError(problems)
    return document
