#!/usr/bin/env python
"""Save a PNG of an ingested table's checks in the Dagster UI (headless Chromium over CDP).

Usage:
    screenshot_monitoring.py [--url http://127.0.0.1:3000] [--output docs/monitoring.png]
                             [--asset warehouse/device_health_heartrate_raw]
                             [--check max_lag_seconds] [--points 5]

Captures the asset's Checks tab with one check opened: the list of the table's checks with their
latest outcome, the opened check's latest evaluation and the plots of its metadata over time.
The default is the demo table whose events the demo produces late on purpose, so its lag check
warns from the first sensor tick.

Before capturing, the script waits (through the webserver's GraphQL API) until the check has at
least ``--points`` evaluations and the latest one failed, so the plot has several points and
the warning shows, and until the ``--others`` checks have a finished latest execution (a run
in progress shows its checks as in progress); then it opens the page and waits until the plots
are drawn. A capture that overlapped a new run is taken again.

With ``--url`` the webserver at that address is used; without it the local stack is started
(``pipeline-platform dev``) and stopped afterwards, as ``screenshot_lineage.py`` does, whose
Chromium, capture and stack helpers this script uses.

Exit codes: 0 saved, 1 failure (reason on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capture_options import add_capture_arguments
from screenshot_lineage import capture, find_chromium, page_base

DEFAULT_ASSET = "warehouse/device_health_heartrate_raw"
DEFAULT_CHECK = "max_lag_seconds"
FINISHED = ("SUCCEEDED", "FAILED")
DEFAULT_OTHERS = "dead_letter_ratio,max_lag_messages,retention_loss"
ATTEMPTS = 5
"""Captures tried until none overlaps a run (a run shows its checks as in progress)."""
COUNT_PLOTS_JS = "document.querySelectorAll('canvas').length"
EXECUTIONS_QUERY = """
query Executions($key: AssetKeyInput!, $check: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: $limit) {
    status
    evaluation { severity }
  }
}
"""


def check_executions(url: str, asset: str, check: str, limit: int) -> list[dict[str, Any]]:
    """Return the newest evaluations of a check (``status``, ``evaluation.severity``)."""
    body = json.dumps(
        {
            "query": EXECUTIONS_QUERY,
            "variables": {"key": {"path": asset.split("/")}, "check": check, "limit": limit},
        }
    ).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data = json.loads(response.read())
    return list((data.get("data") or {}).get("assetCheckExecutions") or [])


def _resolved(url: str, asset: str, checks: Sequence[str]) -> list[str]:
    """Return the checks among ``checks`` whose latest execution is not finished."""
    pending = []
    for name in checks:
        latest = check_executions(url, asset, name, 1)
        if not latest or latest[0]["status"] not in FINISHED:
            pending.append(name)
    return pending


def wait_for_evaluations(
    url: str, asset: str, check: str, points: int, others: Sequence[str], timeout: float
) -> str:
    """Wait for ``points`` evaluations of ``check``, the latest failed, ``others`` finished.

    Returns:
        The severity of the latest evaluation of ``check``.
    """
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    pending = list(others)
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            seen = check_executions(url, asset, check, points)
            pending = _resolved(url, asset, others)
        if len(seen) >= points and seen[0]["status"] == "FAILED" and not pending:
            return str((seen[0].get("evaluation") or {}).get("severity") or "")
        time.sleep(2.0)
    latest = seen[0]["status"] if seen else "none"
    raise RuntimeError(
        f"{asset} {check}: {len(seen)} evaluation(s), latest {latest}, checks not finished "
        f"{pending}, after {timeout:g} s (wanted {points}, a failed latest one, all finished)"
    )


def checks_path(asset: str, check: str) -> str:
    """Return the UI path of an asset's Checks tab with one check opened."""
    quote = urllib.parse.quote
    path = "/".join(quote(part) for part in asset.split("/"))
    return f"/assets/{path}?view=checks&checkDetail={quote(check)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, wait for the evaluations, capture the page, print where it went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="webserver base URL (default: start the local stack)")
    parser.add_argument("--asset", default=DEFAULT_ASSET, help="table asset key (a/b)")
    parser.add_argument("--check", default=DEFAULT_CHECK, help="check to open")
    parser.add_argument("--points", type=int, default=5, help="evaluations to wait for")
    parser.add_argument(
        "--others",
        default=DEFAULT_OTHERS,
        help="comma-separated checks of the asset whose latest execution must be finished",
    )
    add_capture_arguments(parser, Path("docs/monitoring.png"), "stable plots")
    args = parser.parse_args(argv)
    others = [name for name in args.others.split(",") if name]
    try:
        executable = find_chromium(args.chromium)
        with contextlib.ExitStack() as stack:
            base = page_base(stack, args)
            page_url = base.rstrip("/") + checks_path(args.asset, args.check)
            for _attempt in range(ATTEMPTS):
                severity = wait_for_evaluations(
                    base, args.asset, args.check, args.points, others, args.timeout
                )
                plots = capture(
                    page_url,
                    args.output,
                    executable=executable,
                    width=args.width,
                    height=args.height,
                    timeout=args.timeout,
                    settle=args.settle,
                    count_js=COUNT_PLOTS_JS,
                    missing="no plots drawn",
                    dismiss_again=False,
                )
                latest = check_executions(base, args.asset, args.check, 1)
                if (
                    latest
                    and latest[0]["status"] == "FAILED"
                    and not _resolved(base, args.asset, others)
                ):
                    break  # no run started meanwhile: the page shows every outcome
    except (RuntimeError, TimeoutError, OSError) as error:
        sys.stderr.write(f"screenshot_monitoring: {error}\n")
        return 1
    sys.stdout.write(f"saved {args.output} ({plots} plots, {args.check} {severity}, {page_url})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
