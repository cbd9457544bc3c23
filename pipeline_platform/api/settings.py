"""API settings from the environment: tokens and CORS origins (read when the app is built)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

READ_TOKEN_ENV = "PIPELINE_API_READ_TOKEN"
WRITE_TOKEN_ENV = "PIPELINE_API_TOKEN"
CORS_ORIGINS_ENV = "PIPELINE_API_CORS_ORIGINS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8003


@dataclass(frozen=True)
class ApiSettings:
    """Who may call the API and from which browser origins.

    Attributes:
        read_token: Bearer token the read routes require (open when None).
        write_token: Bearer token the POST routes require (refused when None).
        cors_origins: Origins allowed by CORS (none when empty; ``*`` for any).
    """

    read_token: str | None = field(default=None, repr=False)
    write_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()


def load_api_settings(environ: Mapping[str, str] | None = None) -> ApiSettings:
    """Read :class:`ApiSettings` from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    origins = tuple(o.strip() for o in env.get(CORS_ORIGINS_ENV, "").split(",") if o.strip())
    return ApiSettings(
        read_token=env.get(READ_TOKEN_ENV) or None,
        write_token=env.get(WRITE_TOKEN_ENV) or None,
        cors_origins=origins,
    )
