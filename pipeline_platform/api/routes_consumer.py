"""The old consumer's routes: ``/status``, ``/topics``, ``/validate-config``, ``/reload-config``,
and the probes ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pipeline_platform.api.errors import ApiError, JsonResponse, error_response
from pipeline_platform.api.security import require_read, require_write
from pipeline_platform.api.services import ApiServices
from pipeline_platform.registry import queries
from pipeline_platform.registry.live import RegistryUnavailable, one_line

router = APIRouter(default_response_class=JsonResponse)
read = [Depends(require_read)]


def _services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


@router.get("/healthz", summary="The process is up")
async def healthz() -> JsonResponse:
    """``{"ok": true}``."""
    return JsonResponse({"ok": True})


@router.get("/readyz", summary="Registry and warehouse reachable")
def readyz(request: Request) -> JsonResponse:
    """``{"ok": true}``, or 503 ``{"error", "failing"}`` naming the dependency that is down."""
    services = _services(request)
    try:
        services.registry.ping()
    except RegistryUnavailable as error:
        return JsonResponse({"error": str(error), "failing": "registry"}, status_code=503)
    from pipeline_platform.monitoring.warehouse_stats import warehouse_engine

    engine = warehouse_engine(services.settings.warehouse_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as error:
        reason = f"warehouse unavailable: {one_line(error)}"
        return JsonResponse({"error": reason, "failing": "warehouse"}, status_code=503)
    finally:
        engine.dispose()
    return JsonResponse({"ok": True})


@router.get("/status", dependencies=read, summary="Per-table ingestion status")
async def status(request: Request) -> Response:
    """``{"registry": {"revision", "fingerprint", "up"}, "tables": [...]}``."""
    body = (await _services(request).state_async()).status_body
    return Response(body, media_type="application/json")


@router.get("/topics", dependencies=read, summary="Names of the ingested topics")
async def ingested_topics(request: Request) -> JsonResponse:
    """``{"topics": [names of topics with a table]}``."""
    services = _services(request)
    answer = await services.answer_async("ingested", lambda v: queries.ingested_topics(v.document))
    return JsonResponse(answer)


@router.get("/validate-config", dependencies=read, summary="Validate the live registry")
def validate_config(request: Request) -> JsonResponse:
    """``{"valid", "problems": [{"path", "reason"}], "statistics": {...}}``."""
    from pipeline_platform.registry.live_validation import validate_live

    return JsonResponse(validate_live(_services(request).registry.engine))


@router.post(
    "/reload-config",
    dependencies=[Depends(require_write)],
    summary="Record SQL edits as a revision and reload the Dagster code location",
)
async def reload_config(request: Request) -> JsonResponse:
    """``{"reloaded": true, "revision": n}``; 503 when the webserver cannot reload."""
    services = _services(request)

    def reload() -> int:
        from pipeline_platform.registry.sql_edits import record_sql_edits

        try:
            revision = record_sql_edits(services.registry.engine)
        except SQLAlchemyError as error:
            raise ApiError(503, f"registry unavailable: {one_line(error)}") from None
        services.registry.view(fresh=True)
        try:
            services.reload_location()
        except Exception as error:
            raise ApiError(503, f"code location reload failed: {one_line(error)}") from None
        return revision

    try:
        revision = await run_in_threadpool(reload)
    except ApiError as error:
        return error_response(error.status, error.message)
    return JsonResponse({"reloaded": True, "revision": revision})
