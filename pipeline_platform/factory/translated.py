"""What the registry translator produces: specs, ingestion targets and skipped records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from pipeline_platform.registry.document import DataSource, Flow, Stage, TableConfig, Topic


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


def skip_reason(error: Exception) -> str:
    """Return the one-line reason shown for a record that failed: ``ValueError: ...``."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
