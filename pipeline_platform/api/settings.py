"""API settings from the environment: tokens and CORS origins (read when the app is built)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline_platform.config import read_environment

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
    values = read_environment(environ)
    return ApiSettings(
        read_token=values.api_read_token.get_secret_value() if values.api_read_token else None,
        write_token=values.api_token.get_secret_value() if values.api_token else None,
        cors_origins=values.api_cors_origins,
    )
