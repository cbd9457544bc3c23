"""``pipeline-platform dlq list | stats | replay``: the error log of ingested tables.

``list`` filters by reason kind (``--reason parse|schema|mapping|database|retention``, the
stored ``reason_kind``) and age (``--since 1h|6h|24h|7d``); ``stats`` counts dead letters by
table and reason kind, in total and over the last 24 hours. The commands read the registry
named by ``PIPELINE_REGISTRY_URL`` and the warehouse of each table's data source
(``PIPELINE_WAREHOUSE_URL`` for ``warehouse``, otherwise the data source's ``url_env``
variable). Without a TOPIC they cover every topic that has a table.
"""

from __future__ import annotations

import argparse
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipeline_platform.cli.output import CommandError, print_json, print_table
from pipeline_platform.cli.query_commands import load_registry_document
from pipeline_platform.config import Settings, environment, load_settings
from pipeline_platform.registry.rules import table_asset_name
from pipeline_platform.warehouse.rejects import REASON_KINDS

if TYPE_CHECKING:
    from pipeline_platform.registry.document import RegistryDocument, Topic


_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """Return the start of a ``--since`` window (``30m``, ``1h``, ``6h``, ``24h``, ``7d``).

    Args:
        value: The option's value (None: no window).
        now: The current time (UTC by default).

    Returns:
        The aware start time, or None.

    Raises:
        CommandError: The value is not a positive number of minutes, hours or days.
    """
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        raise CommandError(
            f"--since {value!r}: expected a duration such as 1h, 6h, 24h or 7d "
            "(a number followed by m, h or d)"
        )
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return (now or datetime.now(UTC)) - delta


def check_reason(value: str | None) -> str | None:
    """Return a ``--reason`` kind, refusing unknown ones with the list of valid kinds."""
    if value is None or value in REASON_KINDS:
        return value
    raise CommandError(f"--reason {value!r}: expected one of {', '.join(REASON_KINDS)}")


def register(subparsers: Any) -> None:
    """Register ``dlq list``, ``dlq stats`` and ``dlq replay``."""
    dlq = subparsers.add_parser("dlq", help="dead letters of ingested tables (the error log)")
    commands = dlq.add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list dead letters")
    listing.add_argument("topic", nargs="?", help="topic name (default: every ingested topic)")
    listing.add_argument("--reason", metavar="KIND", help=f"only {'|'.join(REASON_KINDS)}")
    listing.add_argument("--since", metavar="AGE", help="only the last 1h, 6h, 24h, 7d...")
    listing.add_argument("--limit", type=int, default=100, help="at most this many per topic")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    stats = commands.add_parser("stats", help="dead letters by table and reason kind")
    stats.add_argument("topic", nargs="?", help="topic name (default: every ingested topic)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=_stats)
    replay = commands.add_parser(
        "replay", help="re-map dead letters with the current registry and write those that pass"
    )
    replay.add_argument("topic", nargs="?", help="topic name (default: every ingested topic)")
    replay.add_argument("--limit", type=int, default=None, help="at most this many per topic")
    replay.add_argument("--json", action="store_true", help="print JSON")
    replay.set_defaults(handler=_replay)


def _topics(document: RegistryDocument, name: str | None) -> list[Topic]:
    if name is None:
        return [t for t in document.topics if t.table is not None]
    topic = document.topic(name)
    if topic is None:
        raise CommandError(f"unknown topic {name!r}")
    if topic.table is None:
        raise CommandError(f"topic {name!r} has no table: it is not ingested")
    return [topic]


def warehouse_url_for(document: RegistryDocument, data_source: str, settings: Settings) -> str:
    """Return the URL of a table's data source.

    Args:
        document: The registry.
        data_source: The table's data source name.
        settings: Runtime settings (``warehouse_url`` serves ``warehouse``).

    Returns:
        The SQLAlchemy-style URL.
    """
    source = next((d for d in document.data_sources if d.name == data_source), None)
    if source is not None:
        value = environment().get(source.url_env)
        if value:
            return value
    if data_source == "warehouse":
        return settings.warehouse_url
    env = source.url_env if source is not None else "(not in the registry)"
    raise CommandError(f"data source {data_source!r}: environment variable {env} is not set")


def _list(args: argparse.Namespace) -> int:
    from pipeline_platform.ingestion.service import list_dead_letters

    kind = check_reason(args.reason)
    since = parse_since(args.since)
    settings = load_settings()
    document = load_registry_document(settings)
    records = []
    for topic in _topics(document, args.topic):
        assert topic.table is not None
        url = warehouse_url_for(document, topic.table.data_source, settings)
        records.extend(
            list_dead_letters(topic, warehouse_url=url, limit=args.limit, kind=kind, since=since)
        )
    if args.json:
        print_json(
            [
                {
                    "id": r.id,
                    "table": r.asset_key,
                    "topic": r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "key": r.key.decode("utf-8", "replace") if r.key is not None else None,
                    "raw": r.raw.decode("utf-8", "replace") if r.raw is not None else None,
                    "reason": r.reason,
                    "reasonKind": r.reason_kind,
                    "runId": r.run_id,
                    "createdAt": str(r.created_at) if r.created_at is not None else None,
                }
                for r in records
            ]
        )
        return 0
    print_table(
        ("id", "table", "topic", "partition", "offset", "kind", "created", "reason"),
        (
            (r.id, r.asset_key, r.topic, r.partition, r.offset, r.reason_kind,
             str(r.created_at or "")[:19], r.reason)
            for r in records
        ),
    )  # fmt: skip
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pipeline_platform.monitoring.warehouse_stats import (
        TableStats,
        group_by_url,
        read_table_stats,
        warehouse_engine,
    )

    settings = load_settings()
    document = load_registry_document(settings)
    topics: dict[str, str] = {}
    urls: dict[str, str] = {}
    for topic in _topics(document, args.topic):
        assert topic.table is not None
        key = f"{topic.table.data_source}/{topic.table.name}"
        topics[key] = topic.name
        urls[key] = warehouse_url_for(document, topic.table.data_source, settings)
    stats: dict[str, TableStats] = {}
    for url, keys in group_by_url(urls).items():
        engine = warehouse_engine(url)
        try:
            stats.update(read_table_stats(engine, keys))
        finally:
            engine.dispose()
    rows: list[dict[str, Any]] = [
        {
            "table": key,
            "topic": topics[key],
            "total": dict(sorted(stats[key].dead_letters_total.items())),
            "last24h": dict(sorted(stats[key].dead_letters_24h.items())),
        }
        for key in sorted(stats)
    ]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ("table", "topic", "kind", "total", "last 24 h"),
        (
            (row["table"], row["topic"], kind, count, row["last24h"].get(kind, 0))
            for row in rows
            for kind, count in row["total"].items()
        ),
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from pipeline_platform.ingestion.service import replay_dead_letters

    settings = load_settings()
    document = load_registry_document(settings)
    run_id = f"dlq-replay-{uuid.uuid4().hex[:12]}"
    results = []
    for topic in _topics(document, args.topic):
        assert topic.table is not None
        url = warehouse_url_for(document, topic.table.data_source, settings)
        result = replay_dead_letters(topic, warehouse_url=url, run_id=run_id, limit=args.limit)
        results.append(
            {
                "topic": topic.name,
                "table": table_asset_name(topic.table.data_source, topic.table.name),
                "replayed": result.replayed,
                "rowsWritten": result.rows_written,
                "stillFailing": result.still_failing,
            }
        )
    if args.json:
        print_json({"runId": run_id, "topics": results})
        return 0
    print_table(
        ("topic", "table", "replayed", "rows written", "still failing"),
        (
            (r["topic"], r["table"], r["replayed"], r["rowsWritten"], r["stillFailing"])
            for r in results
        ),
    )
    return 0
