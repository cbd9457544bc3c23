"""``pipeline-platform serve [--host] [--port]``: the HTTP API of spec §10 on uvicorn."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_platform.api.settings import DEFAULT_HOST, DEFAULT_PORT


def register(subparsers: Any) -> None:
    """Register ``serve`` on the ``pipeline-platform`` parser."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the HTTP API (pipeline monitor, consumer status, /metrics)",
        description="Serve the HTTP API of the platform with uvicorn.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address ({DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline_platform.api.app import create_app

    print(f"pipeline_platform API on http://{args.host}:{args.port} (docs at /docs)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
