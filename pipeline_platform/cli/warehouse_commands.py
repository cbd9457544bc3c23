"""``pipeline-platform warehouse migrate``: give live columns the registry's types."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_platform.cli.output import CommandError, print_json


def register(subparsers: Any) -> None:
    """Register ``warehouse migrate``."""
    parser = subparsers.add_parser("warehouse", help="the warehouse tables of ingested topics")
    commands = parser.add_subparsers(dest="warehouse_command", metavar="COMMAND", required=True)
    migrate = commands.add_parser(
        "migrate",
        help="ALTER columns whose type changed in the registry (one transaction per warehouse)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="print the statements only")
    migrate.add_argument(
        "--force", action="store_true", help="also apply conversions that would change data"
    )
    migrate.add_argument("--json", action="store_true", help="print the plan as JSON")
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from pipeline_platform.cli.dlq_commands import warehouse_url_for
    from pipeline_platform.cli.query_commands import load_registry_document
    from pipeline_platform.config import load_settings
    from pipeline_platform.ingestion.column_types import apply_migration, plan_migration

    settings = load_settings()
    document = load_registry_document(settings)

    def url_for(data_source: str) -> str:
        return warehouse_url_for(document, data_source, settings)

    steps = plan_migration(document, url_for)
    lossy = [s for s in steps if s.step.lossy is not None]
    if args.json:
        print_json(
            [
                {
                    "dataSource": s.data_source,
                    "sql": s.step.sql,
                    "lossy": s.step.lossy,
                }
                for s in steps
            ]
        )
    else:
        for planned in steps:
            note = f"  -- {planned.step.lossy}" if planned.step.lossy else ""
            print(f"{planned.step.sql};{note}")
        if not steps:
            print("nothing to migrate: every column has the registry's type")
    if not steps or args.dry_run:
        if steps and not args.json:
            print("dry run: nothing applied")
        return 0
    if lossy and not args.force:
        raise CommandError(
            *(
                f"{s.step.change.table.replace(chr(34), '')}.{s.step.change.column}: "
                f"{s.step.lossy}; refused (use --force to convert anyway)"
                for s in lossy
            )
        )
    try:
        apply_migration(steps, url_for)
    except Exception as error:
        raise CommandError(f"migration rolled back: {str(error).splitlines()[0]}") from None
    if not args.json:
        print(f"migrated {len(steps)} column(s)")
    return 0
