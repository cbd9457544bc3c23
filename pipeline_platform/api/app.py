"""The ASGI app factory of the platform API (spec §10)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline_platform.api import metrics, routes_consumer, routes_registry
from pipeline_platform.api.errors import MAX_URL_BYTES, error_response, install_error_handlers
from pipeline_platform.api.services import ApiServices, build_services
from pipeline_platform.api.settings import ApiSettings, load_api_settings
from pipeline_platform.config import load_settings

logger = logging.getLogger(__name__)


def _warm(services: ApiServices) -> None:
    try:
        services.registry.view()
    except Exception as error:  # reported again, as a 503, by the first request that needs it
        logger.warning("Registry not readable at start: %s", error)


class RefuseHugeUrls:
    """ASGI middleware answering 414 to a URL longer than ``MAX_URL_BYTES``.

    A plain ASGI callable rather than ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` runs every request through an extra task and stream, which cost
    about a third of the throughput of the small routes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            if size > MAX_URL_BYTES:
                response = error_response(414, f"URL longer than {MAX_URL_BYTES} bytes")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    services: ApiServices | None = None, api_settings: ApiSettings | None = None
) -> FastAPI:
    """Build the API app.

    Args:
        services: The service layer (default: built from the environment's settings).
        api_settings: Tokens and CORS origins (default: read from the environment).

    Returns:
        The FastAPI application; its OpenAPI document is at ``/openapi.json``, docs at ``/docs``.
    """
    services = services or build_services(load_settings())
    api_settings = api_settings or load_api_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Read the registry while the server starts, so the first requests find it warm.
        threading.Thread(target=_warm, args=(services,), daemon=True).start()
        yield
        services.close()

    app = FastAPI(
        title="pipeline_platform API",
        version="1",
        description="The pipeline monitor and consumer routes, status and OpenMetrics.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.api_settings = api_settings
    app.state.metrics_registry = metrics.metrics_registry(services.state)
    install_error_handlers(app)

    app.add_middleware(RefuseHugeUrls)
    if api_settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api_settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(routes_registry.router)
    app.include_router(routes_consumer.router)
    app.include_router(metrics.router)
    return app
