"""Commands (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register the commands of this module."""
    del subparsers
    _ = argparse
