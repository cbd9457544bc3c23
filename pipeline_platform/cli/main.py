"""The ``pipeline-platform`` console script: a thin argparse front over the service packages.

Each command module exposes ``register(subparsers)``, adding its commands with a ``handler``
default that takes the parsed arguments and returns an exit code. Exit codes: 0 success,
1 validation or runtime error (one line per problem on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pipeline_platform.cli import (
    control_commands,
    dev_command,
    dlq_commands,
    pipeline_commands,
    query_commands,
    registry_commands,
    serve_command,
    status_command,
    warehouse_commands,
)
from pipeline_platform.cli.output import CommandError

# Imported, never looked up by name: a command module that fails to import fails the command
# line loudly instead of silently dropping its commands.
COMMAND_MODULES = (
    registry_commands,
    query_commands,
    pipeline_commands,
    dlq_commands,
    warehouse_commands,
    dev_command,
    serve_command,
    status_command,
    control_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="pipeline-platform",
        description="Database-defined data pipelines on Dagster.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CommandError as error:
        for line in error.lines:
            print(f"error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pipeline-platform topics | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
