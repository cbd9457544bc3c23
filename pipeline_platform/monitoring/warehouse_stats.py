"""What the warehouse state tables say about each ingested table, in one query each.

Dead letters are counted by their stored *reason kind* (``pp_dead_letters.reason_kind``, set
when they are written by :func:`pipeline_platform.warehouse.reason_kind`: ``parse``, ``schema``,
``mapping``, ``database``, ``retention``), in total and over the last 24 hours; the offsets
table gives when each table last committed. Missing state tables (nothing ingested yet) read
as empty. No DDL, no writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pipeline_platform.warehouse.base import DEAD_LETTERS_TABLE, OFFSETS_TABLE

#: Kind shown for dead letters stored before ``reason_kind`` existed and not yet backfilled
#: (the next ``ensure_state_tables`` of an ingestion run classifies them).
UNCLASSIFIED = "unclassified"


@dataclass
class TableStats:
    """Warehouse-side figures of one ingested table (asset key ``<data_source>/<table>``)."""

    dead_letters_total: dict[str, int] = field(default_factory=dict)
    dead_letters_24h: dict[str, int] = field(default_factory=dict)
    committed_at: datetime | None = None


def warehouse_engine(url: str) -> Engine:
    """Return a small SQLAlchemy engine for a warehouse URL (psycopg 3 for PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres", "timescaledb"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=2, max_overflow=2, pool_pre_ping=True)
    return create_engine(parsed)


def _missing_table(error: DBAPIError) -> bool:
    message = str(error.orig).lower()
    return "no such table" in message or "does not exist" in message


def read_table_stats(
    engine: Engine, asset_keys: Sequence[str], now: datetime | None = None
) -> dict[str, TableStats]:
    """Read dead-letter counts by kind and last commit times of many tables at once.

    Args:
        engine: Engine of one warehouse.
        asset_keys: The ``<data_source>/<table>`` keys to report.
        now: The current time (UTC), for the 24-hour window.

    Returns:
        Asset key → :class:`TableStats`, for every key asked (empty stats when nothing stored).
    """
    stats = {key: TableStats() for key in asset_keys}
    if not asset_keys:
        return stats
    since = (now or datetime.now(UTC)) - timedelta(hours=24)
    sqlite = engine.dialect.name == "sqlite"
    cutoff: Any = since.strftime("%Y-%m-%d %H:%M:%S") if sqlite else since
    keys: Any = bindparam("keys", list(asset_keys), expanding=True)
    dead = text(
        f"SELECT asset_key, reason_kind AS kind, count(*) AS total, "
        "sum(CASE WHEN created_at >= :since THEN 1 ELSE 0 END) AS recent "
        f"FROM {DEAD_LETTERS_TABLE} WHERE asset_key IN :keys GROUP BY 1, 2"
    ).bindparams(keys)
    offsets = text(
        f"SELECT asset_key, max(updated_at) AS at FROM {OFFSETS_TABLE} "
        "WHERE asset_key IN :keys GROUP BY 1"
    ).bindparams(keys)
    with engine.connect() as connection:
        for statement, params, reader in (
            (dead, {"since": cutoff}, _add_dead),
            (offsets, {}, _add_commit),
        ):
            try:
                rows = connection.execute(statement, params).all()
            except DBAPIError as error:
                if not _missing_table(error):
                    raise
                connection.rollback()
                continue
            for row in rows:
                reader(stats[row[0]], row)
    return stats


def _add_dead(stats: TableStats, row: Any) -> None:
    kind = str(row.kind) if row.kind else UNCLASSIFIED
    stats.dead_letters_total[kind] = stats.dead_letters_total.get(kind, 0) + int(row.total)
    recent = int(row.recent or 0)
    if recent:
        stats.dead_letters_24h[kind] = stats.dead_letters_24h.get(kind, 0) + recent


def _add_commit(stats: TableStats, row: Any) -> None:
    value = row.at
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        stats.committed_at = value.replace(tzinfo=UTC) if value.tzinfo is None else value


def group_by_url(urls: Mapping[str, str]) -> dict[str, list[str]]:
    """Group asset keys by warehouse URL: ``{url: [asset_key, ...]}``."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for key, url in urls.items():
        grouped[url].append(key)
    return dict(grouped)
