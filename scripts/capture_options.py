"""Command-line options shared by the screenshot scripts (browser, page size, waits, stack)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_capture_arguments(parser: argparse.ArgumentParser, output: Path, settle: str) -> None:
    """Add the options every screenshot script takes.

    They are ``--output``, ``--chromium``, ``--width``, ``--height``, ``--timeout``, ``--settle``
    (``settle`` names what must stay stable, for the help text) and ``--events-per-second``.
    """
    parser.add_argument("--output", type=Path, default=output)
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds for each wait")
    parser.add_argument("--settle", type=float, default=2.0, help=f"seconds of {settle}")
    parser.add_argument(
        "--events-per-second", type=float, default=100.0, help="demo events of a started stack"
    )
