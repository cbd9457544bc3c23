"""Tables packed into ingestion runs: which lagging tables share a run, which get their own.

One sensor tick requests at most ``max_runs`` runs. A table whose lag reaches the message budget
of a run gets a run of its own (its backlog alone fills one); tables with less lag share runs of
at most ``max_tables`` tables and ``max_messages`` messages (first fit, largest lag first). Own
runs and shared runs take turns for the slots of a tick, so small tables are not starved by a
few large backlogs, nor large backlogs by many small tables.

A table is never in two in-flight runs: the sensor leaves out every table of a queued or running
run (:func:`in_flight_tables`, read from the runs' tags). The database fencing of stored offsets
stays the guarantee (two runs can never both commit the same offset range); this check only
keeps the queue from holding runs that would be fenced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import dagster as dg

from pipeline_platform.factory import naming
from pipeline_platform.factory.translator import TableTarget

IN_FLIGHT_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)

#: Value of the ``pipeline_platform/ingestion`` tag of a run of one table / of several tables.
SINGLE = "single"
PACKED = "packed"


@dataclass(frozen=True)
class LaggingTable:
    """A table with messages to ingest.

    Attributes:
        target: The table.
        lag: Partition → lag (``stored``, ``end``) as read by the sensor.
        messages: Messages behind (sum over partitions).
    """

    target: TableTarget
    lag: Mapping[int, Any]
    messages: int


@dataclass(frozen=True)
class PlannedRun:
    """The tables of one ingestion run."""

    tables: tuple[LaggingTable, ...]

    @property
    def messages(self) -> int:
        """Messages behind over the run's tables."""
        return sum(table.messages for table in self.tables)

    @property
    def keys(self) -> list[dg.AssetKey]:
        """The run's table keys, sorted."""
        return sorted((t.target.key for t in self.tables), key=lambda k: k.to_user_string())


def plan_runs(
    lagging: Iterable[LaggingTable], *, max_runs: int, max_tables: int, max_messages: int
) -> list[PlannedRun]:
    """Group lagging tables into at most ``max_runs`` runs (see the module docstring).

    Args:
        lagging: Tables with lag, none of them in an in-flight run.
        max_runs: Most runs to return (the per-tick cap).
        max_tables: Most tables in a shared run (1 = every table gets its own run).
        max_messages: Message budget of a shared run; a table with at least this lag runs alone.

    Returns:
        The runs, in the order to request them.
    """
    ordered = sorted(lagging, key=lambda t: (-t.messages, t.target.key.to_user_string()))
    alone = [t for t in ordered if t.messages >= max_messages or max_tables <= 1]
    packs: list[list[LaggingTable]] = []
    sums: list[int] = []
    for table in ordered:
        if table.messages >= max_messages or max_tables <= 1:
            continue
        for i, pack in enumerate(packs):
            if len(pack) < max_tables and sums[i] + table.messages <= max_messages:
                pack.append(table)
                sums[i] += table.messages
                break
        else:
            if len(packs) >= max_runs:
                continue  # no slot this tick; the table waits for the next one
            packs.append([table])
            sums.append(table.messages)
    runs: list[PlannedRun] = []
    for own, shared in zip_longest(alone, packs):
        if own is not None:
            runs.append(PlannedRun((own,)))
        if shared is not None:
            runs.append(PlannedRun(tuple(shared)))
    return runs[: max(0, max_runs)]


def run_key_for(key: dg.AssetKey, lag: Mapping[int, Any]) -> str:
    """Return a run key unique to a table and its offset ranges (stored → end per partition)."""
    ranges = ",".join(f"{p}:{lag[p].stored}-{lag[p].end}" for p in sorted(lag))
    digest = hashlib.sha256(ranges.encode()).hexdigest()[:20]
    return f"{key.to_user_string()}@{digest}"


def ingestion_run_config(max_messages: int | None) -> dict[str, Any]:
    """Return the run config that caps messages per table of an ingestion run."""
    if max_messages is None:
        return {}
    return {"ops": {naming.INGESTION_OP_NAME: {"config": {"max_messages": max_messages}}}}


def run_request(run: PlannedRun, max_messages_per_table: int | None) -> dg.RunRequest:
    """Return the request of a planned run, with its tags and a key unique to its offsets.

    Every run carries ``pipeline_platform/ingestion`` (``single`` or ``packed``) and
    ``pipeline_platform/tables`` (its table keys, comma-separated); a run of one table also
    carries ``pipeline_platform/table`` and ``pipeline_platform/topic``.
    """
    keys = run.keys
    names = [key.to_user_string() for key in keys]
    by_name = {t.target.key.to_user_string(): t for t in run.tables}
    tags = {naming.INGESTION_TAG: SINGLE if len(keys) == 1 else PACKED}
    tags[naming.TABLES_TAG] = ",".join(names)
    if len(keys) == 1:
        only = run.tables[0]
        tags[naming.TABLE_TAG] = names[0]
        tags[naming.TOPIC_TAG] = only.target.topic.name
        run_key = run_key_for(only.target.key, only.lag)
    else:
        parts = "|".join(run_key_for(by_name[n].target.key, by_name[n].lag) for n in names)
        run_key = f"packed:{len(keys)}@{hashlib.sha256(parts.encode()).hexdigest()[:20]}"
    return dg.RunRequest(
        run_key=run_key,
        job_name=naming.INGESTION_JOB_NAME,
        asset_selection=keys,
        run_config=ingestion_run_config(max_messages_per_table),
        tags=tags,
    )


def in_flight_tables(instance: dg.DagsterInstance, known: Sequence[TableTarget]) -> set[str]:
    """Return the keys (``<data_source>/<table>``) of tables in a queued or running run.

    A run's tables come from its ``pipeline_platform/tables`` tag (sensor runs), else its
    ``pipeline_platform/table`` tag, else its asset selection (runs launched from the UI or the
    CLI); an ``ingestion`` job run without a selection covers every table.

    Args:
        instance: The Dagster instance.
        known: The tables this sensor watches (for runs that select all of them).

    Returns:
        The table keys as user strings.
    """
    busy: set[str] = set()
    for run in instance.get_runs(
        filters=dg.RunsFilter(statuses=list(IN_FLIGHT_STATUSES)), limit=5_000
    ):
        if naming.TABLES_TAG in run.tags:
            busy.update(name for name in run.tags[naming.TABLES_TAG].split(",") if name)
        elif naming.TABLE_TAG in run.tags:
            busy.add(run.tags[naming.TABLE_TAG])
        elif run.asset_selection:
            busy.update(key.to_user_string() for key in run.asset_selection)
        elif run.job_name == naming.INGESTION_JOB_NAME:
            busy.update(target.key.to_user_string() for target in known)
    return busy
