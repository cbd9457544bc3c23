"""Registry snapshot → Dagster asset specs (the dagster-fivetran/sling "translator" pattern).

:class:`RegistryTranslator` has one method per record kind; subclass it and override a method to
change how one kind of record looks in Dagster. :meth:`RegistryTranslator.translate` walks the
whole document once, isolates every record (a record that cannot be translated is skipped and
reported, never fatal) and returns a :class:`TranslatedRegistry`.

Every decision is taken here, at load time; asset bodies only do I/O.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.monitoring.checks import check_specs, freshness_policy
from pipeline_platform.registry.document import (
    DEFAULT_DATA_SOURCE,
    ApiEndpoint,
    DataSource,
    Flow,
    RegistryDocument,
    Stage,
    TableConfig,
    Topic,
)

logger = logging.getLogger(__name__)

_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_REQUIRED = dg.TableColumnConstraints(nullable=False)
_KIND_BY_SOURCE = {"postgresql": "postgres", "timescaledb": "timescaledb", "sqlite": "sqlite"}


@dataclass(frozen=True)
class StageLink:
    """One stage that touches a topic, with the topic's role in it."""

    flow: Flow
    stage: Stage
    role: str  # "input", "output" or "error"


@dataclass(frozen=True)
class TableTarget:
    """Everything an ingestion run needs to know about one table asset."""

    key: dg.AssetKey
    topic: Topic
    table: TableConfig
    data_source: DataSource | None


@dataclass(frozen=True)
class SkippedRecord:
    """A registry record left out of the definitions, with the reason shown to the user."""

    kind: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {self.reason}"


@dataclass(frozen=True)
class TranslatedRegistry:
    """The asset specs of a registry snapshot, ready to be assembled into Definitions."""

    topic_specs: tuple[dg.AssetSpec, ...]
    api_specs: tuple[dg.AssetSpec, ...]
    table_specs: tuple[dg.AssetSpec, ...]
    table_checks: tuple[dg.AssetCheckSpec, ...]
    tables: tuple[TableTarget, ...]
    flow_groups: Mapping[str, str]  # flow name → group name
    skipped: tuple[SkippedRecord, ...] = ()

    @property
    def external_specs(self) -> tuple[dg.AssetSpec, ...]:
        """Topic and API endpoint specs: observable but not materializable here."""
        return (*self.api_specs, *self.topic_specs)


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


class RegistryTranslator:
    """Translate registry records into Dagster specs; override a method to customise one kind."""

    # -- names -----------------------------------------------------------------------------

    def get_flow_group_name(self, flow: Flow) -> str:
        """Return the asset group of a flow (``audio-processing`` → ``audio_processing``)."""
        return naming.dagster_name(flow.name)

    def get_topic_group_name(self, topic: Topic, links: Sequence[StageLink]) -> str | None:
        """Return the flow whose stage writes the topic, else the first flow reading it.

        Args:
            topic: The topic.
            links: Stages that touch the topic, in document order.

        Returns:
            The flow *name* (mapped to its group by the caller), or None for no flow.
        """
        producers = [link for link in links if link.role != "input"]
        chosen = (producers or list(links))[:1]
        return chosen[0].flow.name if chosen else None

    # -- specs -----------------------------------------------------------------------------

    def get_topic_spec(
        self, topic: Topic, links: Sequence[StageLink], group_name: str
    ) -> dg.AssetSpec:
        """Return the external asset of a Kafka topic.

        Args:
            topic: The topic record.
            links: Stages that touch the topic; stages writing it become its upstreams.
            group_name: The asset group chosen for the topic.

        Returns:
            An ``AssetSpec`` keyed ``kafka/<topic name>`` of kind ``kafka``. Category, source
            and datatype are tags (metadata only when not a valid tag value); partitions,
            retention and, for a topic written by a stage, its stage, service and flow are
            metadata (``role`` only for an error topic; ``producers`` when several stages write
            it). Nothing is stated twice: the snapshot the code server sends grows with every
            byte repeated per asset.
        """
        deps: list[dg.AssetKey] = [naming.api_key(e.path) for e in topic.api_endpoints]
        tags: dict[str, str] = {}
        metadata: dict[str, Any] = {}
        for name, value in (
            ("category", topic.category),
            ("source", topic.source),
            ("datatype", topic.datatype),
        ):
            # A tag when the value can be one (filterable in the UI), else metadata; never both.
            if _TAG_VALUE.match(value):
                tags[name] = value
            else:
                metadata[name] = value
        metadata["partitions"] = topic.partitions
        if not topic.active:
            metadata["active"] = False
        if topic.retention_days is not None:
            metadata["retention_days"] = topic.retention_days
        producers = [link for link in links if link.role != "input"]
        for link in producers:
            deps.extend(naming.topic_key(name) for name in link.stage.inputs)
        if producers:
            first = producers[0]
            metadata["stage"] = first.stage.name
            metadata["service"] = first.stage.service
            metadata["flow"] = first.flow.name
            if first.role != "output":
                metadata["role"] = first.role
            if len(producers) > 1:
                metadata["producers"] = [
                    {"flow": p.flow.name, "stage": p.stage.name, "service": p.stage.service}
                    for p in producers
                ]
        return dg.AssetSpec(
            key=naming.topic_key(topic.name),
            description=topic.description or None,
            deps=_unique_keys(deps),
            group_name=group_name,
            kinds={"kafka"},
            metadata=metadata,
            tags=tags,
        )

    def get_api_endpoint_spec(
        self, key: dg.AssetKey, producers: Sequence[tuple[Topic, ApiEndpoint]], group_name: str
    ) -> dg.AssetSpec:
        """Return the external asset of an HTTP endpoint path (upstream of its topics).

        Args:
            key: The endpoint's asset key (``api/...``).
            producers: (topic, endpoint) pairs that share this path.
            group_name: The group of the first topic the endpoint feeds.

        Returns:
            An ``AssetSpec`` under ``api/`` of kind ``api``; its description names the methods
            and the topics (no metadata repeating them).
        """
        path = producers[0][1].path
        methods = sorted({endpoint.method for _, endpoint in producers})
        topics = [topic.name for topic, _ in producers]
        return dg.AssetSpec(
            key=key,
            description=f"{'/'.join(methods)} {path} produces into {', '.join(topics)}",
            group_name=group_name,
            kinds={"api"},
        )

    def get_table_spec(
        self, topic: Topic, table: TableConfig, data_source: DataSource | None, group_name: str
    ) -> dg.AssetSpec:
        """Return the materializable asset of a table a topic is ingested into.

        Args:
            topic: The topic the table is fed from.
            table: The topic's table configuration.
            data_source: The table's data source record, when the registry has one.
            group_name: The group of the table (its topic's group).

        Returns:
            An ``AssetSpec`` keyed ``<data_source>/<table>`` downstream of ``kafka/<topic>``, with
            the column schema (a column's description is its message field when that differs
            from the column name), table name, write mode and time column. The lag threshold is
            on the asset check and the freshness window on the freshness policy, not repeated
            in metadata.
        """
        source_kind = data_source.kind if data_source else "postgresql"
        qualified = f"{table.db_schema}.{table.name}" if table.db_schema else table.name
        columns = [
            _column(mapping.column, mapping.type, mapping.source, mapping.required)
            for mapping in table.mappings
        ]
        metadata: dict[str, Any] = {
            "dagster/column_schema": dg.TableSchema(columns=columns),
            "dagster/table_name": qualified,
            "mode": f"upsert on {', '.join(table.upsert_key)}" if table.upsert_key else "append",
        }
        if table.time_column:
            metadata["time_column"] = table.time_column
        return dg.AssetSpec(
            key=naming.table_key(table.data_source, table.name),
            description=f"Ingested from Kafka topic {topic.name}",
            deps=[naming.topic_key(topic.name)],
            group_name=group_name,
            kinds={_KIND_BY_SOURCE.get(source_kind, "postgres"), "table"},
            metadata=metadata,
            freshness_policy=freshness_policy(table),
        )

    def get_table_check_specs(
        self, key: dg.AssetKey, table: TableConfig
    ) -> list[dg.AssetCheckSpec]:
        """Return the asset checks of a table (see ``pipeline_platform.monitoring.checks``)."""
        return check_specs(key, table)

    # -- whole document --------------------------------------------------------------------

    def translate(self, document: RegistryDocument) -> TranslatedRegistry:
        """Translate a whole snapshot, skipping and reporting records that cannot be translated.

        Args:
            document: The registry snapshot.

        Returns:
            The specs and ingestion targets of every record that translated.
        """
        skipped: list[SkippedRecord] = []
        index = self._index(document, skipped)
        topics = _unique_topics(document.topics, skipped)

        topic_specs: list[dg.AssetSpec] = []
        table_specs: list[dg.AssetSpec] = []
        table_checks: list[dg.AssetCheckSpec] = []
        tables: list[TableTarget] = []
        table_keys: set[dg.AssetKey] = set()
        known = {naming.topic_key(topic.name) for topic in topics}
        for topic in topics:
            try:
                group = index.topic_groups[topic.name]
                spec = self.get_topic_spec(topic, index.links.get(topic.name, ()), group)
                spec = _drop_unknown_deps(spec, known, skipped, topic.name)
            except Exception as error:  # one bad record never takes the location down
                skipped.append(SkippedRecord("topic", topic.name, _reason(error)))
                continue
            topic_specs.append(spec)
            if topic.table is None:
                continue
            try:
                key = naming.table_key(topic.table.data_source, topic.table.name)
                if key in table_keys:
                    raise ValueError(f"table {key.to_user_string()} is fed by another topic")
                source = index.data_sources.get(topic.table.data_source)
                if source is None and topic.table.data_source != DEFAULT_DATA_SOURCE:
                    raise ValueError(f"unknown data source {topic.table.data_source!r}")
                table_spec = self.get_table_spec(topic, topic.table, source, group)
                checks = self.get_table_check_specs(table_spec.key, topic.table)
            except Exception as error:
                skipped.append(SkippedRecord("table", f"{topic.name}", _reason(error)))
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
                api_specs.append(self.get_api_endpoint_spec(key, producers, group))
            except Exception as error:
                skipped.append(SkippedRecord("api endpoint", key.to_user_string(), _reason(error)))

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

    def _index(self, document: RegistryDocument, skipped: list[SkippedRecord]) -> _Index:
        index = _Index()
        index.data_sources = {source.name: source for source in document.data_sources}
        used_groups: set[str] = {naming.DEFAULT_TOPIC_GROUP, naming.PLATFORM_GROUP}
        for flow in document.flows:
            try:
                if flow.name in index.flow_groups:
                    raise ValueError("duplicate flow name")
                group = self.get_flow_group_name(flow)
                base, n = group, 2
                while group in used_groups:  # `a-b` and `a.b` must not share a group
                    group, n = f"{base}_{n}", n + 1
                used_groups.add(group)
                index.flow_groups[flow.name] = group
                for stage in flow.stages:
                    for role, topic_name in stage.topics_by_role():
                        index.links[topic_name].append(StageLink(flow, stage, role))
            except Exception as error:
                skipped.append(SkippedRecord("flow", flow.name, _reason(error)))
        for topic in document.topics:
            links = index.links.get(topic.name, ())
            try:
                flow_name = self.get_topic_group_name(topic, links)
                group = (
                    index.flow_groups.get(flow_name, naming.DEFAULT_TOPIC_GROUP)
                    if flow_name
                    else naming.DEFAULT_TOPIC_GROUP
                )
            except Exception as error:
                skipped.append(SkippedRecord("topic", topic.name, _reason(error)))
                group = naming.DEFAULT_TOPIC_GROUP
            index.topic_groups.setdefault(topic.name, group)
            for endpoint in topic.api_endpoints:
                index.endpoints[naming.api_key(endpoint.path)].append((topic, endpoint))
        return index


@lru_cache(maxsize=8192)
def _column(name: str, type_name: str, source: str, required: bool) -> dg.TableColumn:
    """Return one (immutable, shared) column of a table schema.

    Registries repeat the same mapping (``device_id``, ``recorded_at``...) in many tables: they
    share one object instead of building it again per table.
    """
    return dg.TableColumn(
        name=name,
        type=type_name,
        description=None if source == name else f"from {source}",
        constraints=_REQUIRED if required else None,
    )


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _unique_keys(keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    return list(dict.fromkeys(keys))


def _unique_topics(topics: Iterable[Topic], skipped: list[SkippedRecord]) -> list[Topic]:
    seen: set[str] = set()
    unique: list[Topic] = []
    for topic in topics:
        if topic.name in seen:
            skipped.append(SkippedRecord("topic", topic.name, "duplicate topic name"))
            continue
        seen.add(topic.name)
        unique.append(topic)
    return unique


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
    by_key = {spec.key: spec for spec in specs}
    upstream = {
        spec.key: [d.asset_key for d in spec.deps if d.asset_key in by_key] for spec in specs
    }
    state: dict[dg.AssetKey, int] = {}  # 1 = on the DFS stack, 2 = done
    back_edges: dict[dg.AssetKey, set[dg.AssetKey]] = defaultdict(set)
    for root in upstream:
        if root in state:
            continue
        stack: list[tuple[dg.AssetKey, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            parents = upstream[node]
            if i < len(parents):
                stack[-1] = (node, i + 1)
                parent = parents[i]
                if state.get(parent) == 1:
                    back_edges[node].add(parent)
                elif parent not in state:
                    state[parent] = 1
                    stack.append((parent, 0))
            else:
                state[node] = 2
                stack.pop()
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
