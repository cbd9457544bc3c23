"""``/api/pipelines/*`` and ``/api/kafka/pipeline/*``: the old pipeline monitor's read routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

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


def _answer(request: Request, key: Any, question: Any) -> JsonResponse:
    return JsonResponse(_services(request).answer(key, lambda view: question(view.document)))


@router.get("/api/pipelines/flows", summary="Active flows")
def flows(request: Request) -> JsonResponse:
    """``{"flows": [{"flow_name", "description", "priority", "stage_count", "topic_count",
    "active"}]}``."""
    return _answer(request, "flows", queries.flows)


@router.get("/api/pipelines/flows/{flow}", summary="One flow and its stages")
def flow(request: Request, flow: str) -> JsonResponse:
    """``{"flow": {...}, "stages": [...]}``; 404 for an unknown flow."""
    name = checked_name(flow, "flow")
    return _answer(request, ("flow", name), lambda doc: queries.flow(doc, name))


@router.get("/api/pipelines/stages", summary="Stages, optionally of one flow")
def stages(
    request: Request, flow: Annotated[str | None, Query(max_length=MAX_NAME)] = None
) -> JsonResponse:
    """``{"stages": [...]}``; 404 when ``flow`` names no flow."""
    name = checked_name(flow, "flow") if flow is not None else None
    return _answer(request, ("stages", name), lambda doc: queries.stages(doc, name))


@router.get("/api/pipelines/topics", summary="Topics")
def topics(request: Request) -> JsonResponse:
    """``{"topics": [...]}``."""
    return _answer(request, "topics", queries.topics)


@router.get("/api/pipelines/topology", summary="Flows, stages, topics, producers, consumers")
@router.get("/api/kafka/pipeline/topology", summary="Same as /api/pipelines/topology")
def topology(request: Request) -> JsonResponse:
    """``{"flows", "stages", "topics", "topic_producers", "topic_consumers"}``."""
    return _answer(request, "topology", queries.topology)


@router.get("/api/pipelines/dependencies", summary="Service dependencies")
@router.get("/api/kafka/pipeline/dependencies", summary="Same as /api/pipelines/dependencies")
def dependencies(request: Request) -> JsonResponse:
    """``{"dependencies": [{"source_service", "target_service", "via_topics"}]}``."""
    return _answer(request, "dependencies", queries.dependencies)


@router.get("/api/pipelines/services/{service}", summary="The stages a service runs")
def service(request: Request, service: str) -> JsonResponse:
    """``{"service_name", "stages": [...]}``; 404 for an unknown service."""
    name = checked_name(service, "service")
    return _answer(request, ("service", name), lambda doc: queries.service(doc, name))


@router.get("/api/pipelines/topics/{topic}/lineage", summary="Producers, consumers, table")
def lineage(request: Request, topic: str) -> JsonResponse:
    """``{"topic", "producers", "consumers", "apiEndpoints", "storageTable"}``; 404 if unknown."""
    name = checked_name(topic, "topic")
    return _answer(request, ("lineage", name), lambda doc: queries.lineage(doc, name))


@router.get("/api/kafka/pipeline/database", summary="Graph view: nodes and edges")
def database_graph(request: Request) -> JsonResponse:
    """``{"nodes": [{"id", "type", "position", "data"}], "edges": [...]}``."""
    return _answer(request, "graph", queries.pipeline_graph)
