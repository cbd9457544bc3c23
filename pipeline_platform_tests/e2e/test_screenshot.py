"""The lineage screenshot script captures a real PNG of the running dev stack's UI.

Chromium is required (``scripts/bootstrap.sh`` installs it when ``PIPELINE_WITH_BROWSER=1``, as
``scripts/test.sh`` sets): this test fails rather than skips when it is missing.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_platform_tests.e2e.local_stack import DevStack, dev_stack

__all__ = ["dev_stack"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_lineage.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_screenshot_of_the_lineage(dev_stack: DevStack, tmp_path: Path) -> None:
    """``scripts/screenshot_lineage.py --url`` saves a non-trivial PNG of the lineage graph."""
    output = tmp_path / "lineage.png"
    command = [sys.executable, str(SCRIPT), "--url", dev_stack.url, "--output", str(output)]
    command += ["--width", "1400", "--height", "900", "--timeout", "180"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "graph nodes" in result.stdout
    nodes = int(result.stdout.split("(", 1)[1].split()[0])
    assert nodes >= 5, result.stdout  # API endpoints, topics, stage outputs, tables
    data = output.read_bytes()
    assert png_size(data) == (1400, 900)
    assert len(data) > 50_000, f"suspiciously small PNG ({len(data)} bytes): a blank page?"


MONITORING_SCRIPT = SCRIPT.parent / "screenshot_monitoring.py"


def test_screenshot_of_the_lagging_demo_tables_checks(dev_stack: DevStack, tmp_path: Path) -> None:
    """The demo's late heart-rate table warns within minutes; its checks page is captured."""
    output = tmp_path / "monitoring.png"
    command = [sys.executable, str(MONITORING_SCRIPT), "--url", dev_stack.url]
    command += ["--output", str(output), "--width", "1400", "--height", "900"]
    command += ["--points", "3", "--timeout", "240"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "max_lag_seconds WARN" in result.stdout
    plots = int(result.stdout.split("(", 1)[1].split()[0])
    assert plots >= 1, result.stdout
    data = output.read_bytes()
    assert png_size(data) == (1400, 900)
    assert len(data) > 50_000, f"suspiciously small PNG ({len(data)} bytes): a blank page?"
