"""``pipeline-platform dlq list | replay``: inspect and replay dead letters of ingested tables.

Both commands read the registry named by ``PIPELINE_REGISTRY_URL`` and the warehouse of each
table's data source (``PIPELINE_WAREHOUSE_URL`` for ``warehouse``, otherwise the data source's
``url_env`` variable). Without a TOPIC they cover every topic that has a table.
"""

from __future__ import annotations

import argparse
import uuid
from typing import TYPE_CHECKING, Any

from pipeline_platform.cli.output import CommandError, print_json, print_table
from pipeline_platform.cli.query_commands import load_registry_document
from pipeline_platform.config import Settings, environment, load_settings
from pipeline_platform.registry.rules import table_asset_name

if TYPE_CHECKING:
    from pipeline_platform.registry.document import RegistryDocument, Topic


def register(subparsers: Any) -> None:
    """Register ``dlq list`` and ``dlq replay``."""
    dlq = subparsers.add_parser("dlq", help="dead letters of ingested tables")
    commands = dlq.add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list dead letters")
    listing.add_argument("topic", nargs="?", help="topic name (default: every ingested topic)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many per topic")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
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

    settings = load_settings()
    document = load_registry_document(settings)
    records = []
    for topic in _topics(document, args.topic):
        assert topic.table is not None
        url = warehouse_url_for(document, topic.table.data_source, settings)
        records.extend(list_dead_letters(topic, warehouse_url=url, limit=args.limit))
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
                    "runId": r.run_id,
                    "createdAt": str(r.created_at) if r.created_at is not None else None,
                }
                for r in records
            ]
        )
        return 0
    print_table(
        ("id", "table", "topic", "partition", "offset", "reason"),
        ((r.id, r.asset_key, r.topic, r.partition, r.offset, r.reason) for r in records),
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
