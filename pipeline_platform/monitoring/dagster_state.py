"""What the Dagster instance knows: last runs per job and per table, rows written per table.

Read at scrape time from the instance's storage (so every process sees the same figures).
Rows written are the sum of the ``rows_written`` metadata of a table's materializations; the
sum is kept per asset with the storage id it covers, so each read only fetches new events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

_FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
_PAGE = 1000


@dataclass(frozen=True)
class RunInfo:
    """A Dagster run: id, status (``SUCCESS``, ``FAILURE``...) and when it ended (or started)."""

    run_id: str
    status: str
    ended_at: datetime | None
    job_name: str = ""

    def as_json(self) -> dict[str, Any]:
        """Return ``{"run_id", "status", "ended_at"}`` (ISO 8601, UTC)."""
        ended = self.ended_at.isoformat() if self.ended_at is not None else None
        return {"run_id": self.run_id, "status": self.status, "ended_at": ended}


def _timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _run_info(record: Any) -> RunInfo:
    run = record.dagster_run
    return RunInfo(
        run_id=run.run_id,
        status=run.status.value,
        ended_at=_timestamp(record.end_time or record.start_time),
        job_name=run.job_name,
    )


class DagsterReader:
    """Reads run and materialization state from a Dagster instance (``DAGSTER_HOME``)."""

    def __init__(self, instance: Any) -> None:
        """Keep the instance; nothing is read yet."""
        self.instance = instance
        self._rows: dict[str, tuple[int, int]] = {}  # asset → (last storage id, rows)
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> DagsterReader | None:
        """Return a reader of the instance of ``DAGSTER_HOME``, or None when it is not set."""
        from pipeline_platform.config import read_environment

        if read_environment().dagster_home is None:
            return None
        import dagster as dg

        return cls(dg.DagsterInstance.get())

    def last_runs_by_job(self, limit: int = 500) -> dict[str, RunInfo]:
        """Return the newest finished run of each job among the last ``limit`` finished runs."""
        import dagster as dg

        statuses = [dg.DagsterRunStatus(s) for s in _FINISHED]
        latest: dict[str, RunInfo] = {}
        for record in self.instance.get_run_records(dg.RunsFilter(statuses=statuses), limit=limit):
            info = _run_info(record)
            latest.setdefault(info.job_name, info)
        return latest

    def last_runs_by_asset(self, asset_keys: Sequence[str]) -> dict[str, RunInfo]:
        """Return the last run that targeted each table asset (``<data_source>/<table>``)."""
        import dagster as dg

        keys = [dg.AssetKey(key.split("/")) for key in asset_keys]
        run_of: dict[str, str] = {}
        for record in self.instance.get_asset_records(keys):
            entry = record.asset_entry
            if entry.last_run_id:
                run_of["/".join(entry.asset_key.path)] = entry.last_run_id
        if not run_of:
            return {}
        records = self.instance.get_run_records(dg.RunsFilter(run_ids=sorted(set(run_of.values()))))
        by_id = {r.dagster_run.run_id: _run_info(r) for r in records}
        return {asset: by_id[run] for asset, run in run_of.items() if run in by_id}

    def rows_written(self, asset_keys: Sequence[str]) -> dict[str, int]:
        """Return the rows written into each table over all its materializations.

        One asset-records query tells which tables have new materializations; only those are
        read, from the storage id already summed.
        """
        import dagster as dg

        latest: dict[str, int] = {}  # asset → storage id of its newest materialization
        for record in self.instance.get_asset_records(
            [dg.AssetKey(k.split("/")) for k in asset_keys]
        ):
            entry = record.asset_entry
            if entry.last_materialization_record is not None:
                latest["/".join(entry.asset_key.path)] = (
                    entry.last_materialization_record.storage_id
                )
        with self._lock:
            for key in asset_keys:
                after, total = self._rows.get(key, (0, 0))
                if latest.get(key, 0) <= after:
                    self._rows[key] = (after, total)  # nothing new: no query
                    continue
                cursor = None
                while True:
                    result = self.instance.fetch_materializations(
                        dg.AssetRecordsFilter(
                            asset_key=dg.AssetKey(key.split("/")), after_storage_id=after or None
                        ),
                        limit=_PAGE,
                        cursor=cursor,
                        ascending=True,
                    )
                    for record in result.records:
                        materialization = record.asset_materialization
                        value = (
                            materialization.metadata.get("rows_written")
                            if materialization
                            else None
                        )
                        total += int(getattr(value, "value", 0) or 0)
                        after = max(after, record.storage_id)
                    if not result.has_more:
                        break
                    cursor = result.cursor
                self._rows[key] = (after, total)
            return {key: self._rows[key][1] for key in asset_keys}


def last_day_totals(
    instance: Any, key: Any, now: float, limit: int = _PAGE
) -> tuple[int, int] | None:
    """Return ``(dead_letters, messages)`` summed over a table's last 24 h of materializations.

    Args:
        instance: The Dagster instance.
        key: The table's ``AssetKey``.
        now: Seconds since the epoch the 24 hours end at.
        limit: Most materializations read (the newest ones).

    Returns:
        The sums, or None when the instance could not be read.
    """
    import dagster as dg

    try:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_timestamp=now - 86_400), limit=limit
        ).records
    except Exception:
        logger.warning("Materializations of %s not read", key, exc_info=True)
        return None
    dead = messages = 0
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        dead += int(getattr(metadata.get("dead_letters"), "value", 0) or 0)
        messages += int(getattr(metadata.get("messages"), "value", 0) or 0)
    return dead, messages
