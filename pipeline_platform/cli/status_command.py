"""``pipeline-platform status [--json]``: per-table ingestion status (the ``/status`` body)."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_platform.cli.output import print_json, print_table
from pipeline_platform.registry.rules import table_asset_name


def register(subparsers: Any) -> None:
    """Register ``status`` on the ``pipeline-platform`` parser."""
    parser = subparsers.add_parser(
        "status",
        help="show lag, last event, rows written, dead letters and last run per ingested table",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (the /status body)")
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from pipeline_platform.config import load_settings
    from pipeline_platform.monitoring.state import StateReader
    from pipeline_platform.registry.database import create_registry_engine
    from pipeline_platform.registry.live import LiveRegistry

    settings = load_settings()
    registry = LiveRegistry(create_registry_engine(settings.registry_url))
    reader = StateReader(settings, registry)
    try:
        state = reader.read().as_json()
    finally:
        reader.close()
        registry.engine.dispose()
    if args.json:
        print_json(state)
        return 0
    info = state["registry"]
    print(f"registry revision {info['revision']} ({'up' if info['up'] else 'DOWN'})")
    print_table(
        ("table", "topic", "lag", "lag s", "last event", "rows", "dead 24h", "last run"),
        (
            (
                table_asset_name(t["data_source"], t["table"]),
                t["topic"],
                t["lag_messages"],
                t["lag_seconds"],
                t["last_event_at"],
                t["rows_written"],
                ", ".join(f"{k} {v}" for k, v in t["dead_letters_24h"].items()) or None,
                t["last_run"]["status"] if t["last_run"] else None,
            )
            for t in state["tables"]
        ),
    )
    return 0
