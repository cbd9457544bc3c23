"""Bearer tokens: read routes open unless a read token is set; POST routes need the write token.

Tokens are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from pipeline_platform.api.errors import ApiError
from pipeline_platform.api.settings import ApiSettings


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


async def require_read(request: Request) -> None:
    """Dependency of the read routes: checks ``PIPELINE_API_READ_TOKEN`` when it is set."""
    settings: ApiSettings = request.app.state.api_settings
    if settings.read_token is None:
        return
    given = _bearer(request)
    if given is None:
        raise ApiError(401, "a bearer token is required (Authorization: Bearer ...)")
    if not _matches(given, settings.read_token):
        raise ApiError(403, "invalid token")


async def require_write(request: Request) -> None:
    """Dependency of the POST routes: requires ``Authorization: Bearer $PIPELINE_API_TOKEN``."""
    settings: ApiSettings = request.app.state.api_settings
    if settings.write_token is None:
        raise ApiError(403, "write routes are disabled: PIPELINE_API_TOKEN is not set")
    given = _bearer(request)
    if given is None:
        raise ApiError(403, "a bearer token is required (Authorization: Bearer ...)")
    if not _matches(given, settings.write_token):
        raise ApiError(403, "invalid token")
