"""``pipeline-platform pause NAME`` / ``resume NAME``: stop or restart a table or a pipeline.

NAME is an ingested table (``warehouse/orders``, its table name or its topic's name) or a
table pipeline. The change is a registry revision (``registry history`` shows it), picked up
by the running code location on its next reload.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from pipeline_platform.cli.output import CommandError, print_json


def register(subparsers: Any) -> None:
    """Register ``pause`` and ``resume``."""
    for verb, paused, text in (
        ("pause", True, "stop ingesting a table / stop a pipeline's schedule or sensor"),
        ("resume", False, "resume a paused table or pipeline"),
    ):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("name", metavar="TABLE|PIPELINE")
        parser.add_argument("--actor", help="who makes the change (default: the OS user)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.set_defaults(handler=_control, paused=paused)


def _control(args: argparse.Namespace) -> int:
    from pipeline_platform.cli.registry_commands import registry_engine
    from pipeline_platform.registry.controls import ControlError, set_paused
    from pipeline_platform.registry.store import RevisionConflictError

    try:
        result = set_paused(
            registry_engine(upgrade=True),
            args.name,
            args.paused,
            actor=args.actor or getpass.getuser(),
        )
    except (ControlError, RevisionConflictError) as error:
        raise CommandError(str(error)) from None
    state = "paused" if result.paused else "active"
    if args.json:
        print_json(
            {
                "kind": result.kind,
                "name": result.name,
                "topic": result.topic,
                "state": state,
                "revision": result.revision,
            }
        )
        return 0
    what = f"{result.kind} {result.name}" + (f" (topic {result.topic})" if result.topic else "")
    if result.revision is None:
        print(f"{what} is already {state}; nothing written")
    else:
        print(f"{what} is now {state}: registry revision {result.revision}")
    return 0
