"""Walking a registry document through a :class:`RegistryTranslator`, one record at a time.

Every record is isolated: one that cannot be translated (a hand-written SQL edit, an override
that raises) is skipped and reported, never fatal. The registry's cross-entry rules (duplicate
names and tables, unknown data sources, cycles) come from :mod:`pipeline_platform.registry.rules`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.factory.translated import (
    SkippedRecord,
    StageLink,
    TableTarget,
    TranslatedRegistry,
    skip_reason,
)
from pipeline_platform.registry.document import (
    ApiEndpoint,
    DataSource,
    RegistryDocument,
    Topic,
)
from pipeline_platform.registry.rules import (
    cycle_breaking_edges,
    data_source_problem,
    duplicates,
    known_data_sources,
    table_asset_name,
)

if TYPE_CHECKING:
    from pipeline_platform.factory.translator import RegistryTranslator

logger = logging.getLogger(__name__)


@dataclass
class _Index:
    """Look-ups computed once per document."""

    links: dict[str, list[StageLink]] = field(default_factory=lambda: defaultdict(list))
    endpoints: dict[dg.AssetKey, list[tuple[Topic, ApiEndpoint]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    flow_groups: dict[str, str] = field(default_factory=dict)
    data_sources: dict[str, DataSource] = field(default_factory=dict)
    topic_groups: dict[str, str] = field(default_factory=dict)


def translate_document(
    translator: RegistryTranslator, document: RegistryDocument
) -> TranslatedRegistry:
    """Translate a whole snapshot with ``translator``, skipping records that cannot be translated.

    Args:
        translator: The translator whose ``get_*`` methods build each spec.
        document: The registry snapshot.

    Returns:
        The specs and ingestion targets of every record that translated.
    """
    skipped: list[SkippedRecord] = []
    index = _index(translator, document, skipped)
    topics = _unique_topics(document.topics, skipped)
    repeated_tables = {
        i
        for i, _, _ in duplicates(
            (i, table_asset_name(t.table.data_source, t.table.name))
            for i, t in enumerate(topics)
            if t.table is not None
        )
    }
    known_sources = known_data_sources(index.data_sources)

    topic_specs: list[dg.AssetSpec] = []
    table_specs: list[dg.AssetSpec] = []
    table_checks: list[dg.AssetCheckSpec] = []
    tables: list[TableTarget] = []
    table_keys: set[dg.AssetKey] = set()
    known = {naming.topic_key(topic.name) for topic in topics}
    for i, topic in enumerate(topics):
        try:
            group = index.topic_groups[topic.name]
            spec = translator.get_topic_spec(topic, index.links.get(topic.name, ()), group)
            spec = _drop_unknown_deps(spec, known, skipped, topic.name)
        except Exception as error:  # one bad record never takes the location down
            skipped.append(SkippedRecord("topic", topic.name, skip_reason(error)))
            continue
        topic_specs.append(spec)
        if topic.table is None:
            continue
        try:
            if i in repeated_tables:
                name = table_asset_name(topic.table.data_source, topic.table.name)
                raise ValueError(f"table {name} is fed by another topic")
            if (problem := data_source_problem(topic.table, known_sources)) is not None:
                raise ValueError(problem)
            source = index.data_sources.get(topic.table.data_source)
            table_spec = translator.get_table_spec(topic, topic.table, source, group)
            if table_spec.key in table_keys:  # an overridden key may collide
                raise ValueError(f"table {table_spec.key.to_user_string()} is fed by another topic")
            checks = translator.get_table_check_specs(table_spec.key, topic.table)
        except Exception as error:
            skipped.append(SkippedRecord("table", f"{topic.name}", skip_reason(error)))
            continue
        table_keys.add(table_spec.key)
        table_specs.append(table_spec)
        table_checks.extend(checks)
        tables.append(TableTarget(table_spec.key, topic, topic.table, source))

    topic_specs = _break_cycles(topic_specs, skipped)
    api_specs: list[dg.AssetSpec] = []
    for key, producers in index.endpoints.items():
        try:
            group = index.topic_groups[producers[0][0].name]
            api_specs.append(translator.get_api_endpoint_spec(key, producers, group))
        except Exception as error:
            skipped.append(SkippedRecord("api endpoint", key.to_user_string(), skip_reason(error)))

    for record in skipped:
        logger.warning("Registry record skipped: %s", record)
    return TranslatedRegistry(
        topic_specs=tuple(topic_specs),
        api_specs=tuple(api_specs),
        table_specs=tuple(table_specs),
        table_checks=tuple(table_checks),
        tables=tuple(tables),
        flow_groups=dict(index.flow_groups),
        skipped=tuple(skipped),
    )


def _index(
    translator: RegistryTranslator, document: RegistryDocument, skipped: list[SkippedRecord]
) -> _Index:
    index = _Index()
    index.data_sources = {source.name: source for source in document.data_sources}
    used_groups: set[str] = {naming.DEFAULT_TOPIC_GROUP, naming.PLATFORM_GROUP}
    repeated = {i for i, _, _ in duplicates(enumerate(f.name for f in document.flows))}
    for i, flow in enumerate(document.flows):
        try:
            if i in repeated:
                raise ValueError("duplicate flow name")
            group = translator.get_flow_group_name(flow)
            base, n = group, 2
            while group in used_groups:  # `a-b` and `a.b` must not share a group
                group, n = f"{base}_{n}", n + 1
            used_groups.add(group)
            index.flow_groups[flow.name] = group
            for stage in flow.stages:
                for role, topic_name in stage.topics_by_role():
                    index.links[topic_name].append(StageLink(flow, stage, role))
        except Exception as error:
            skipped.append(SkippedRecord("flow", flow.name, skip_reason(error)))
    for topic in document.topics:
        links = index.links.get(topic.name, ())
        try:
            flow_name = translator.get_topic_group_name(topic, links)
            group = (
                index.flow_groups.get(flow_name, naming.DEFAULT_TOPIC_GROUP)
                if flow_name
                else naming.DEFAULT_TOPIC_GROUP
            )
        except Exception as error:
            skipped.append(SkippedRecord("topic", topic.name, skip_reason(error)))
            group = naming.DEFAULT_TOPIC_GROUP
        index.topic_groups.setdefault(topic.name, group)
        for endpoint in topic.api_endpoints:
            index.endpoints[naming.api_key(endpoint.path)].append((topic, endpoint))
    return index


def _unique_topics(topics: tuple[Topic, ...], skipped: list[SkippedRecord]) -> list[Topic]:
    repeated = {i for i, _, _ in duplicates(enumerate(t.name for t in topics))}
    for i in sorted(repeated):
        skipped.append(SkippedRecord("topic", topics[i].name, "duplicate topic name"))
    return [topic for i, topic in enumerate(topics) if i not in repeated]


def _drop_unknown_deps(
    spec: dg.AssetSpec, known: set[dg.AssetKey], skipped: list[SkippedRecord], name: str
) -> dg.AssetSpec:
    """Remove upstream topics that are not in the registry (a hand-edited stage, say)."""
    unknown = [
        dep.asset_key
        for dep in spec.deps
        if dep.asset_key.path[0] == naming.KAFKA_PREFIX and dep.asset_key not in known
    ]
    if not unknown:
        return spec
    skipped.append(
        SkippedRecord(
            "topic",
            name,
            "upstream topics not in the registry were dropped: "
            + ", ".join(k.path[-1] for k in unknown),
        )
    )
    return spec.replace_attributes(deps=[d for d in spec.deps if d.asset_key not in unknown])


def _break_cycles(specs: list[dg.AssetSpec], skipped: list[SkippedRecord]) -> list[dg.AssetSpec]:
    """Drop the dependency edges that close a cycle among topics (Dagster refuses cycles)."""
    keys = {spec.key for spec in specs}
    back_edges = cycle_breaking_edges(
        {spec.key: [d.asset_key for d in spec.deps if d.asset_key in keys] for spec in specs}
    )
    if not back_edges:
        return specs
    result = []
    for spec in specs:
        cut = back_edges.get(spec.key)
        if cut:
            skipped.append(
                SkippedRecord(
                    "topic",
                    spec.key.path[-1],
                    "dependency cycle: upstream "
                    + ", ".join(k.to_user_string() for k in sorted(cut, key=str))
                    + " dropped",
                )
            )
            spec = spec.replace_attributes(deps=[d for d in spec.deps if d.asset_key not in cut])
        result.append(spec)
    return result
