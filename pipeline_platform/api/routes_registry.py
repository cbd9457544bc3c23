"""``/api/pipelines/*`` and ``/api/kafka/pipeline/*``: the old pipeline monitor's read routes."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pipeline_platform.api.errors import ApiError, JsonResponse
from pipeline_platform.api.security import require_read
from pipeline_platform.api.services import ApiServices
from pipeline_platform.registry import queries

router = APIRouter(dependencies=[Depends(require_read)], default_response_class=JsonResponse)

MAX_NAME = 255


def checked_name(value: str, what: str) -> str:
    """Refuse a name that no registry entry can have (too long, control characters)."""
    if not value or len(value) > MAX_NAME or not value.isprintable() or "\ufffd" in value:
        raise ApiError(400, f"bad {what} name: at most {MAX_NAME} printable characters")
    return value


def _services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


async def _answer(request: Request, key: Any, question: Any) -> Response:
    """Answer from the bytes rendered once per registry view (404 for unknown names)."""
    render = lambda view: orjson.dumps(question(view.document))  # noqa: E731
    body = await _services(request).answer_async(key, render)
    return Response(body, media_type="application/json")


@router.get("/api/pipelines/flows", summary="Active flows")
async def flows(request: Request) -> Response:
    """``{"flows": [{"flow_name", "description", "priority", "stage_count", "topic_count",
    "active"}]}``."""
    return await _answer(request, "flows", queries.flows)


@router.get("/api/pipelines/flows/{flow}", summary="One flow and its stages")
async def flow(request: Request, flow: str) -> Response:
    """``{"flow": {...}, "stages": [...]}``; 404 for an unknown flow."""
    name = checked_name(flow, "flow")
    return await _answer(request, ("flow", name), lambda doc: queries.flow(doc, name))


@router.get("/api/pipelines/stages", summary="Stages, optionally of one flow")
async def stages(
    request: Request, flow: Annotated[str | None, Query(max_length=MAX_NAME)] = None
) -> Response:
    """``{"stages": [...]}``; 404 when ``flow`` names no flow."""
    name = checked_name(flow, "flow") if flow is not None else None
    return await _answer(request, ("stages", name), lambda doc: queries.stages(doc, name))


@router.get("/api/pipelines/topics", summary="Topics")
async def topics(request: Request) -> Response:
    """``{"topics": [...]}``."""
    return await _answer(request, "topics", queries.topics)


@router.get("/api/pipelines/topology", summary="Flows, stages, topics, producers, consumers")
@router.get("/api/kafka/pipeline/topology", summary="Same as /api/pipelines/topology")
async def topology(request: Request) -> Response:
    """``{"flows", "stages", "topics", "topic_producers", "topic_consumers"}``."""
    return await _answer(request, "topology", queries.topology)


@router.get("/api/pipelines/dependencies", summary="Service dependencies")
@router.get("/api/kafka/pipeline/dependencies", summary="Same as /api/pipelines/dependencies")
async def dependencies(request: Request) -> Response:
    """``{"dependencies": [{"source_service", "target_service", "via_topics"}]}``."""
    return await _answer(request, "dependencies", queries.dependencies)


@router.get("/api/pipelines/services/{service}", summary="The stages a service runs")
async def service(request: Request, service: str) -> Response:
    """``{"service_name", "stages": [...]}``; 404 for an unknown service."""
    name = checked_name(service, "service")
    return await _answer(request, ("service", name), lambda doc: queries.service(doc, name))


@router.get("/api/pipelines/topics/{topic}/lineage", summary="Producers, consumers, table")
async def lineage(request: Request, topic: str) -> Response:
    """``{"topic", "producers", "consumers", "apiEndpoints", "storageTable"}``; 404 if unknown."""
    name = checked_name(topic, "topic")
    return await _answer(request, ("lineage", name), lambda doc: queries.lineage(doc, name))


@router.get("/api/kafka/pipeline/database", summary="Graph view: nodes and edges")
async def database_graph(request: Request) -> Response:
    """``{"nodes": [{"id", "type", "position", "data"}], "edges": [...]}``."""
    return await _answer(request, "graph", queries.pipeline_graph)
