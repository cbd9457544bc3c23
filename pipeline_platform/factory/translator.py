"""Registry snapshot → Dagster asset specs (the dagster-fivetran/sling "translator" pattern).

:class:`RegistryTranslator` builds every spec from small overridable parts, as dagster-sling's
``DagsterSlingTranslator`` does: ``get_topic_spec`` asks ``get_topic_asset_key``,
``get_topic_deps``, ``get_topic_description``, ``get_topic_kinds``, ``get_topic_tags`` and
``get_topic_metadata``; tables and API endpoints have the same parts. Subclass it and override
one part (say, ``get_table_tags``) to change only that. :meth:`RegistryTranslator.translate`
walks the whole document once (:mod:`pipeline_platform.factory.translate_walk`), isolates every
record (a record that cannot be translated is skipped and reported, never fatal) and returns a
:class:`TranslatedRegistry`.

Every decision is taken here, at load time; asset bodies only do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.factory.translate_walk import translate_document
from pipeline_platform.factory.translated import (
    SkippedRecord,
    StageLink,
    TableTarget,
    TranslatedRegistry,
)
from pipeline_platform.monitoring.checks import check_specs, freshness_policy
from pipeline_platform.registry.document import (
    ApiEndpoint,
    DataSource,
    Flow,
    RegistryDocument,
    TableConfig,
    Topic,
)

__all__ = [
    "RegistryTranslator",
    "SkippedRecord",
    "StageLink",
    "TableTarget",
    "TranslatedRegistry",
]

_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_REQUIRED = dg.TableColumnConstraints(nullable=False)
_KIND_BY_SOURCE = {"postgresql": "postgres", "timescaledb": "timescaledb", "sqlite": "sqlite"}
_TAGGABLE = ("category", "source", "datatype")


def _producers(links: Sequence[StageLink]) -> list[StageLink]:
    return [link for link in links if link.role != "input"]


class RegistryTranslator:
    """Translate registry records into Dagster specs; override a part to customise one aspect."""

    # -- groups ----------------------------------------------------------------------------

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
        chosen = (_producers(links) or list(links))[:1]
        return chosen[0].flow.name if chosen else None

    # -- topics ----------------------------------------------------------------------------

    def get_topic_asset_key(self, topic: Topic) -> dg.AssetKey:
        """Return the key of a topic's asset: ``kafka/<topic name>``."""
        return naming.topic_key(topic.name)

    def get_topic_deps(self, topic: Topic, links: Sequence[StageLink]) -> list[dg.AssetKey]:
        """Return a topic's upstreams: its API endpoints, then the inputs of stages writing it."""
        deps = [naming.api_key(endpoint.path) for endpoint in topic.api_endpoints]
        for link in _producers(links):
            deps.extend(naming.topic_key(name) for name in link.stage.inputs)
        return list(dict.fromkeys(deps))

    def get_topic_description(self, topic: Topic) -> str | None:
        """Return a topic's description (None when the registry has none)."""
        return topic.description or None

    def get_topic_kinds(self, topic: Topic) -> set[str]:
        """Return a topic's kinds: ``{"kafka"}``."""
        return {"kafka"}

    def get_topic_tags(self, topic: Topic) -> dict[str, str]:
        """Return category, source and datatype as tags, for those that are valid tag values.

        A value that cannot be a tag goes to metadata instead (never both).
        """
        return {
            name: value for name in _TAGGABLE if _TAG_VALUE.match(value := getattr(topic, name))
        }

    def get_topic_metadata(self, topic: Topic, links: Sequence[StageLink]) -> dict[str, Any]:
        """Return a topic's metadata.

        Partitions, retention and, for a topic written by a stage, its stage, service and flow
        (``role`` only for an error topic; ``producers`` when several stages write it), plus
        category, source or datatype when not a valid tag value. Nothing is stated twice: the
        snapshot the code server sends grows with every byte repeated per asset.
        """
        metadata: dict[str, Any] = {
            name: value for name in _TAGGABLE if not _TAG_VALUE.match(value := getattr(topic, name))
        }
        metadata["partitions"] = topic.partitions
        if not topic.active:
            metadata["active"] = False
        if topic.retention_days is not None:
            metadata["retention_days"] = topic.retention_days
        producers = _producers(links)
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
        return metadata

    def get_topic_spec(
        self, topic: Topic, links: Sequence[StageLink], group_name: str
    ) -> dg.AssetSpec:
        """Return the external asset of a Kafka topic, built from the ``get_topic_*`` parts.

        Args:
            topic: The topic record.
            links: Stages that touch the topic; stages writing it become its upstreams.
            group_name: The asset group chosen for the topic.
        """
        return dg.AssetSpec(
            key=self.get_topic_asset_key(topic),
            description=self.get_topic_description(topic),
            deps=self.get_topic_deps(topic, links),
            group_name=group_name,
            kinds=self.get_topic_kinds(topic),
            metadata=self.get_topic_metadata(topic, links),
            tags=self.get_topic_tags(topic),
        )

    # -- API endpoints ---------------------------------------------------------------------

    def get_api_endpoint_description(self, producers: Sequence[tuple[Topic, ApiEndpoint]]) -> str:
        """Return ``<methods> <path> produces into <topics>`` for an endpoint path."""
        path = producers[0][1].path
        methods = sorted({endpoint.method for _, endpoint in producers})
        topics = [topic.name for topic, _ in producers]
        return f"{'/'.join(methods)} {path} produces into {', '.join(topics)}"

    def get_api_endpoint_kinds(self, producers: Sequence[tuple[Topic, ApiEndpoint]]) -> set[str]:
        """Return an endpoint's kinds: ``{"api"}``."""
        return {"api"}

    def get_api_endpoint_tags(
        self, producers: Sequence[tuple[Topic, ApiEndpoint]]
    ) -> dict[str, str]:
        """Return an endpoint's tags (none by default)."""
        return {}

    def get_api_endpoint_spec(
        self, key: dg.AssetKey, producers: Sequence[tuple[Topic, ApiEndpoint]], group_name: str
    ) -> dg.AssetSpec:
        """Return the external asset of an HTTP endpoint path (upstream of its topics).

        Args:
            key: The endpoint's asset key (``api/...``).
            producers: (topic, endpoint) pairs that share this path.
            group_name: The group of the first topic the endpoint feeds.
        """
        return dg.AssetSpec(
            key=key,
            description=self.get_api_endpoint_description(producers),
            group_name=group_name,
            kinds=self.get_api_endpoint_kinds(producers),
            tags=self.get_api_endpoint_tags(producers),
        )

    # -- tables ----------------------------------------------------------------------------

    def get_table_asset_key(self, table: TableConfig) -> dg.AssetKey:
        """Return the key of a table's asset: ``<data_source>/<table>``."""
        return naming.table_key(table.data_source, table.name)

    def get_table_deps(self, topic: Topic, table: TableConfig) -> list[dg.AssetKey]:
        """Return a table's upstream: the topic it is ingested from."""
        return [naming.topic_key(topic.name)]

    def get_table_description(self, topic: Topic, table: TableConfig) -> str:
        """Return ``Ingested from Kafka topic <topic>``."""
        return f"Ingested from Kafka topic {topic.name}"

    def get_table_kinds(self, table: TableConfig, data_source: DataSource | None) -> set[str]:
        """Return the database kind of the table's data source and ``table``."""
        source_kind = data_source.kind if data_source else "postgresql"
        return {_KIND_BY_SOURCE.get(source_kind, "postgres"), "table"}

    def get_table_tags(self, topic: Topic, table: TableConfig) -> dict[str, str]:
        """Return a table's tags (none by default)."""
        return {}

    def get_table_metadata(self, topic: Topic, table: TableConfig) -> dict[str, Any]:
        """Return the column schema, table name, write mode and time column of a table.

        A column's description is its message field when that differs from the column name.
        The lag threshold is on the asset check and the freshness window on the freshness
        policy, not repeated here.
        """
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
        return metadata

    def get_table_freshness_policy(self, table: TableConfig) -> dg.FreshnessPolicy | None:
        """Return the freshness policy of ``freshness_minutes`` (warning window included)."""
        return freshness_policy(table)

    def get_table_spec(
        self, topic: Topic, table: TableConfig, data_source: DataSource | None, group_name: str
    ) -> dg.AssetSpec:
        """Return the materializable asset of a table, built from the ``get_table_*`` parts.

        Args:
            topic: The topic the table is fed from.
            table: The topic's table configuration.
            data_source: The table's data source record, when the registry has one.
            group_name: The group of the table (its topic's group).
        """
        return dg.AssetSpec(
            key=self.get_table_asset_key(table),
            description=self.get_table_description(topic, table),
            deps=self.get_table_deps(topic, table),
            group_name=group_name,
            kinds=self.get_table_kinds(table, data_source),
            metadata=self.get_table_metadata(topic, table),
            tags=self.get_table_tags(topic, table),
            freshness_policy=self.get_table_freshness_policy(table),
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
        return translate_document(self, document)


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
