"""The registry as frozen, typed records: the YAML file model of spec §2.1.

One model serves three purposes: it is what ``registry import`` reads, what ``registry export``
writes, and the immutable snapshot the definitions factory translates. Records are pydantic
models with ``extra="forbid"`` so unknown keys are refused with their path.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pipeline_platform.names import (
    ENTITY_NAME,
    ENTITY_NAME_RULE,
    ENV_VAR,
    ENV_VAR_RULE,
    SOURCE_PATH,
    SOURCE_PATH_RULE,
    SQL_IDENTIFIER,
    SQL_IDENTIFIER_RULE,
    TOPIC_NAME,
    TOPIC_NAME_RULE,
)

DOCUMENT_VERSION: Final = 1
DEFAULT_DATA_SOURCE = "warehouse"

FIELD_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "json", "uuid")
FieldType = Literal["string", "integer", "float", "boolean", "timestamp", "date", "json", "uuid"]
Priority = Literal["low", "normal", "high", "critical"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
PipelineMode = Literal["batch", "realtime"]
PipelineStatus = Literal["active", "paused", "draft"]
DataSourceKind = Literal["postgresql", "timescaledb", "sqlite"]
StageRole = Literal["input", "output", "error"]


def _matching(pattern: Any, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(rule)
        return value

    return AfterValidator(check)


SqlIdentifier = Annotated[str, _matching(SQL_IDENTIFIER, SQL_IDENTIFIER_RULE)]
TopicName = Annotated[str, _matching(TOPIC_NAME, TOPIC_NAME_RULE)]
EntityName = Annotated[str, _matching(ENTITY_NAME, ENTITY_NAME_RULE)]
EnvVarName = Annotated[str, _matching(ENV_VAR, ENV_VAR_RULE)]
SourcePath = Annotated[str, _matching(SOURCE_PATH, SOURCE_PATH_RULE)]


class Record(BaseModel):
    """Base of every registry record: immutable, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )


class ApiEndpoint(Record):
    """An HTTP endpoint that produces into a topic."""

    path: Annotated[str, Field(pattern=r"^/\S*$", max_length=512)]
    method: HttpMethod = "POST"


class FieldMapping(Record):
    """One source field of a message mapped to one column."""

    source: SourcePath
    column: SqlIdentifier
    type: FieldType
    required: bool = False
    default: Any = None


class TableConfig(Record):
    """The table a topic is ingested into."""

    data_source: SqlIdentifier = DEFAULT_DATA_SOURCE
    db_schema: SqlIdentifier | None = Field(default=None, alias="schema")
    name: SqlIdentifier
    upsert_key: tuple[SqlIdentifier, ...] = ()
    time_column: SqlIdentifier | None = None
    max_lag_messages: Annotated[int, Field(gt=0)] | None = None
    max_lag_seconds: Annotated[int, Field(gt=0)] | None = None
    max_dead_letter_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    freshness_minutes: Annotated[int, Field(gt=0)] | None = None
    mappings: Annotated[tuple[FieldMapping, ...], Field(min_length=1)]

    @property
    def columns(self) -> tuple[str, ...]:
        """The mapped column names, in mapping order."""
        return tuple(mapping.column for mapping in self.mappings)


class Topic(Record):
    """A Kafka topic with its schema, producers and optional target table."""

    name: TopicName
    category: str = ""
    source: str = ""
    datatype: str = ""
    description: str = ""
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 1
    retention_days: Annotated[int, Field(ge=0)] | None = None
    active: bool = True
    api_endpoints: tuple[ApiEndpoint, ...] = ()
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    table: TableConfig | None = None


class Stage(Record):
    """A processing stage: a service reading input topics and writing output/error topics."""

    name: EntityName
    service: EntityName
    description: str = ""
    inputs: tuple[TopicName, ...] = ()
    outputs: tuple[TopicName, ...] = ()
    errors: tuple[TopicName, ...] = ()

    def topics_by_role(self) -> tuple[tuple[StageRole, str], ...]:
        """Every (role, topic) pair of the stage, inputs first."""
        return (
            *(("input", t) for t in self.inputs),
            *(("output", t) for t in self.outputs),
            *(("error", t) for t in self.errors),
        )


class Flow(Record):
    """A processing flow: ordered stages."""

    name: EntityName
    description: str = ""
    priority: Priority = "normal"
    active: bool = True
    stages: tuple[Stage, ...] = ()


class DataSource(Record):
    """A named database connection; the URL is read from an environment variable at run time."""

    name: SqlIdentifier
    kind: DataSourceKind = "postgresql"
    url_env: EnvVarName
    description: str = ""


class Preset(Record):
    """A named module configuration that pipeline nodes reference with ``preset: NAME``."""

    name: EntityName
    module: EntityName
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)


class PipelineNode(Record):
    """One module instance in a pipeline graph; ``config`` keys override the preset's."""

    id: SqlIdentifier
    module: EntityName
    preset: EntityName | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class PipelineGraph(Record):
    """Module nodes and the edges between them."""

    nodes: Annotated[tuple[PipelineNode, ...], Field(min_length=1)]
    edges: tuple[tuple[SqlIdentifier, SqlIdentifier], ...] = ()


class Pipeline(Record):
    """A batch (cron) or realtime (sensor-driven) pipeline of modules."""

    name: EntityName
    description: str = ""
    mode: PipelineMode = "batch"
    schedule: str | None = None
    timezone: str = "UTC"
    status: PipelineStatus = "active"
    graph: PipelineGraph


class RegistryDocument(Record):
    """The whole registry: what one YAML file holds."""

    version: Literal[1] = DOCUMENT_VERSION
    topics: tuple[Topic, ...] = ()
    flows: tuple[Flow, ...] = ()
    data_sources: tuple[DataSource, ...] = ()
    presets: tuple[Preset, ...] = ()
    pipelines: tuple[Pipeline, ...] = ()

    def topic(self, name: str) -> Topic | None:
        """Return the topic called ``name``, or None."""
        return next((t for t in self.topics if t.name == name), None)

    def canonical(self) -> RegistryDocument:
        """Return the same registry with every top-level list sorted by name.

        Export writes the canonical form, so export → import → export is byte-identical.
        """
        return self.model_copy(
            update={
                "topics": tuple(sorted(self.topics, key=lambda t: t.name)),
                "flows": tuple(sorted(self.flows, key=lambda f: f.name)),
                "data_sources": tuple(sorted(self.data_sources, key=lambda d: d.name)),
                "presets": tuple(sorted(self.presets, key=lambda p: p.name)),
                "pipelines": tuple(sorted(self.pipelines, key=lambda p: p.name)),
            }
        )


def record_to_data(record: Record) -> dict[str, Any]:
    """Return a record as plain data with defaults left out (the form written to YAML)."""
    return record.model_dump(mode="json", by_alias=True, exclude_defaults=True)
