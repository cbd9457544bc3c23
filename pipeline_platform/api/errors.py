"""Every error as ``{"error": "<one line>"}``: 400/404/422, 401/403, 503; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from pipeline_platform.registry.live import RegistryUnavailable

logger = logging.getLogger(__name__)

MAX_URL_BYTES = 4096
"""Longest path plus query string accepted (longer: 414)."""


class JsonResponse(Response):
    """A JSON response rendered with orjson (compact, UTF-8)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content``."""
        return orjson.dumps(content)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JsonResponse:
    """Return the JSON error body of spec §10 (first line of ``message`` only)."""
    line = message.strip().splitlines()[0] if message.strip() else "error"
    return JsonResponse({"error": line}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure with one JSON line; an unexpected one is logged, not shown."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JsonResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(LookupError)
    async def not_found(_: Request, error: LookupError) -> JsonResponse:
        return error_response(404, str(error.args[0] if error.args else error))

    @app.exception_handler(RegistryUnavailable)
    async def unavailable(_: Request, error: RegistryUnavailable) -> JsonResponse:
        return error_response(503, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JsonResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JsonResponse:
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return error_response(error.status_code, detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JsonResponse:
        logger.error("%s %s failed: %s", request.method, request.url.path, type(error).__name__)
        return error_response(500, f"internal error ({type(error).__name__})")
