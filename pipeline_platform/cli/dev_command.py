"""``pipeline-platform dev``: the one-command local stack."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Register the ``dev`` command."""
    parser = subparsers.add_parser(
        "dev", help="run the local stack: broker, demo registry, demo events, dagster dev, the API"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="DAGSTER_HOME for the stack (default: $DAGSTER_HOME or ./.dagster_home)",
    )
    parser.add_argument("--port", type=int, default=3000, help="webserver port (default 3000)")
    parser.add_argument(
        "--api-port", type=int, default=8003, help="platform API port (default 8003; 0: off)"
    )
    parser.add_argument("--registry", type=Path, help="registry YAML to import (default: demo)")
    parser.add_argument(
        "--events-per-second", type=float, default=200.0, help="demo event rate (0: none)"
    )
    parser.set_defaults(handler=_dev)


def _dev(args: argparse.Namespace) -> int:
    from pipeline_platform.config import read_environment
    from pipeline_platform.dev.stack import run_dev_stack

    home = args.home or read_environment().dagster_home or Path(".dagster_home")
    return run_dev_stack(
        home=home,
        port=args.port,
        api_port=args.api_port,
        registry_file=args.registry,
        events_per_second=args.events_per_second,
        progress=print,
    )
