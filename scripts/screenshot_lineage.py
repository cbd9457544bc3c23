#!/usr/bin/env python
"""Save a PNG of the Dagster UI's asset lineage of the demo (headless Chromium over CDP).

Usage:
    screenshot_lineage.py [--url http://127.0.0.1:3000] [--output docs/lineage.png]
                          [--group audio_processing | --path /asset-groups]

By default the lineage of one flow's asset group is captured (API endpoints → topics → stage
output topics → tables, readable at one zoom level); ``--path /asset-groups`` captures Dagster's
global asset lineage page, where the demo's 13 groups are collapsed into one node each.

With ``--url`` the webserver at that address is used. Without it, the local stack is started
(``pipeline-platform dev`` on a temporary ``DAGSTER_HOME`` and a free port), screenshotted and
stopped with Ctrl-C (SIGINT).

Chromium is driven through the Chrome DevTools Protocol (``--remote-debugging-port``) with the
``websockets`` package (a dependency of dagster-webserver), so no Selenium or chromedriver is
needed: ``Page.navigate``, then wait until the graph's nodes are drawn and stop changing, then
``Page.captureScreenshot``.

Exit codes: 0 saved, 1 failure (reason on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from capture_options import add_capture_arguments

GLOBAL_LINEAGE_PATH = "/asset-groups"
DEFAULT_LOCATION = "pipeline_platform.definitions"
DEFAULT_GROUP = "audio_processing"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
# Nodes (assets or collapsed groups) of the asset graph: the React app draws each inside an
# SVG <foreignObject>; the count stops changing once layout and zoom-to-fit are done.
COUNT_NODES_JS = "document.querySelectorAll('svg foreignObject').length"
# The "Join the Dagster community" dialog a fresh browser profile gets: press its Skip button.
DISMISS_DIALOG_JS = """
(() => {
  const skip = [...document.querySelectorAll('[role="dialog"] button, .bp5-dialog button, button')]
    .find(b => b.innerText.trim() === 'Skip');
  if (skip) { skip.click(); return true; }
  return false;
})()
"""
ERROR_TEXT_JS = """
(() => {
  const t = document.body ? document.body.innerText : '';
  const m = t.match(/(Unexpected GraphQL error|An error occurred|Error loading)[^\\n]*/);
  return m ? m[0] : '';
})()
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_chromium(explicit: str | None = None) -> str:
    """Return the Chromium executable (``--chromium``, ``$CHROMIUM``, or on the PATH)."""
    for candidate in (explicit, os.environ.get("CHROMIUM")):
        if candidate:
            return candidate
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "Chromium not found: install it (scripts/bootstrap.sh with "
        "PIPELINE_WITH_BROWSER=1) or pass --chromium"
    )


def _get_json(url: str, timeout: float = 5.0, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def lineage_path(location: str, group: str) -> str:
    """Return the UI path of an asset group's lineage graph."""
    quote = urllib.parse.quote
    return f"/locations/{quote(location)}/asset-groups/{quote(group)}/lineage"


def wait_for_webserver(url: str, timeout: float, process: subprocess.Popen[Any] | None) -> None:
    """Wait until the webserver's GraphQL API answers and its code locations are loaded."""
    query = json.dumps(
        {"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}
    ).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the local stack exited with code {process.returncode}")
        try:
            request = urllib.request.Request(
                url.rstrip("/") + "/graphql",
                data=query,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                data = json.loads(response.read())["data"]
            entries = data["workspaceOrError"].get("locationEntries") or []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the webserver at {url} did not answer within {timeout:g} s")


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, websocket_url: str) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self._socket = self._stack.enter_context(
            connect(websocket_url, max_size=None, open_timeout=30)
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events seen meanwhile are kept)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{method} got no answer within {timeout:g} s")
            answer = json.loads(self._socket.recv(timeout=remaining))
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result") or {})
            if "method" in answer:
                self.events.append(answer)

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JavaScript expression in the page and return its value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        """Close the session."""
        with contextlib.suppress(Exception):
            self._stack.close()


@contextlib.contextmanager
def chromium(executable: str, width: int, height: int) -> Iterator[DevTools]:
    """Start headless Chromium with remote debugging and yield a session on a blank page."""
    profile = Path(tempfile.mkdtemp(prefix="pp-chromium-"))
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    session: DevTools | None = None
    try:
        deadline = time.monotonic() + 60
        page: dict[str, Any] | None = None
        while page is None:
            if process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium's DevTools endpoint did not come up within 60 s")
            try:
                targets = _get_json(f"http://127.0.0.1:{port}/json/list")
                page = next((t for t in targets if t.get("type") == "page"), None)
            except OSError:
                pass
            if page is None:
                time.sleep(0.3)
        session = DevTools(page["webSocketDebuggerUrl"])
        session.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield session
    finally:
        if session is not None:
            session.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def capture(
    url: str,
    output: Path,
    *,
    executable: str,
    width: int = 1600,
    height: int = 1000,
    timeout: float = 90.0,
    settle: float = 2.0,
    count_js: str = COUNT_NODES_JS,
    missing: str = "no asset graph nodes rendered",
    dismiss_again: bool = True,
) -> int:
    """Open ``url`` in headless Chromium, wait until what ``count_js`` counts is stable, save a PNG.

    Args:
        url: The page to capture.
        output: Where the PNG goes (parent directories are created).
        executable: The Chromium executable.
        width: Viewport width in CSS pixels.
        height: Viewport height.
        timeout: Seconds to wait for the page to render.
        settle: Seconds the count must stay unchanged before capturing.
        count_js: Expression counting the drawn elements (default: asset graph nodes).
        missing: The failure reason when nothing was counted in time and the page shows no error.
        dismiss_again: Dismiss the community dialog once more after settling (then wait 0.5 s).

    Returns:
        Number of elements counted in the page.
    """
    with chromium(executable, width, height) as page:
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        count, stable_since = -1, time.monotonic()
        while True:
            dismissed = bool(page.evaluate(DISMISS_DIALOG_JS))
            current = int(page.evaluate(count_js) or 0)
            now = time.monotonic()
            if current != count or dismissed:
                count, stable_since = current, now
            if count > 0 and now - stable_since >= settle:
                break
            if now > deadline:
                problem = page.evaluate(ERROR_TEXT_JS) or missing
                raise RuntimeError(f"{url}: {problem} within {timeout:g} s")
            time.sleep(0.25)
        time.sleep(settle)  # let the zoom-to-fit or the charts' animation finish
        if dismiss_again:
            page.evaluate(DISMISS_DIALOG_JS)
            time.sleep(0.5)
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(base64.b64decode(shot["data"]))
    return count


@contextlib.contextmanager
def local_stack(events_per_second: float, timeout: float) -> Iterator[str]:
    """Start ``pipeline-platform dev`` on a temporary home; yield its URL; stop it with SIGINT."""
    home = Path(tempfile.mkdtemp(prefix="pp-screenshot-"))
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_REGISTRY_URL": f"sqlite:///{home / 'registry.db'}",
        "PIPELINE_WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "pipeline_platform.cli.main",
        "dev",
        "--home",
        str(home),
        "--port",
        str(port),
        "--events-per-second",
        f"{events_per_second:g}",
    ]
    log = (home / "stack.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(url, timeout, process)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def page_base(stack: contextlib.ExitStack, args: argparse.Namespace) -> str:
    """Return the webserver of ``--url`` once it answers, or start the local stack on ``stack``."""
    if args.url:
        wait_for_webserver(args.url, args.timeout, None)
        return str(args.url)
    return stack.enter_context(local_stack(args.events_per_second, args.timeout))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, capture the lineage page and print where the PNG went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="webserver base URL (default: start the local stack)")
    parser.add_argument(
        "--group",
        default=DEFAULT_GROUP,
        help=f"asset group (flow) whose lineage to capture (default {DEFAULT_GROUP})",
    )
    parser.add_argument("--location", default=DEFAULT_LOCATION, help="code location name")
    parser.add_argument(
        "--path",
        help=f"page to capture instead of the group lineage ({GLOBAL_LINEAGE_PATH}: the "
        "global lineage, with each group collapsed to one node)",
    )
    add_capture_arguments(parser, Path("docs/lineage.png"), "a stable graph")
    args = parser.parse_args(argv)
    try:
        executable = find_chromium(args.chromium)
        with contextlib.ExitStack() as stack:
            base = page_base(stack, args)
            path = args.path or lineage_path(args.location, args.group)
            page_url = base.rstrip("/") + path
            nodes = capture(
                page_url,
                args.output,
                executable=executable,
                width=args.width,
                height=args.height,
                timeout=args.timeout,
                settle=args.settle,
            )
    except (RuntimeError, TimeoutError, OSError) as error:
        sys.stderr.write(f"screenshot_lineage: {error}\n")
        return 1
    sys.stdout.write(f"saved {args.output} ({nodes} graph nodes, {page_url})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
