"""Helpers for pipeline tests: build a registry document from plain data, seed tables, read."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import psycopg

from pipeline_platform.pipelines.graph import build_plan, presets_by_name
from pipeline_platform.pipelines.runner import RunResult, execute
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.validation import RegistryValidationError, validate_data


def conninfo(url: str) -> str:
    """Return a psycopg connection string for a SQLAlchemy PostgreSQL URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def pg(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on PostgreSQL (autocommit) and return its rows (if any)."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def document(
    pipelines: list[dict[str, Any]],
    sources: dict[str, str] | None = None,
    presets: list[dict[str, Any]] | None = None,
) -> RegistryDocument:
    """Return a validated registry of ``pipelines`` with data sources ``name → env var``."""
    data: dict[str, Any] = {
        "version": 1,
        "data_sources": [
            {"name": name, "kind": "sqlite" if env.endswith("SQLITE") else "postgresql",
             "url_env": env}
            for name, env in (sources or {}).items()
        ],
        "pipelines": pipelines,
    }  # fmt: skip
    if presets:
        data["presets"] = presets
    doc, problems = validate_data(data)
    if doc is None:
        raise RegistryValidationError(problems)
    return doc


def pipeline(
    nodes: list[dict[str, Any]], edges: list[list[str]] | None = None, **fields: Any
) -> dict[str, Any]:
    """Return a pipeline entry; edges default to the node order as a chain."""
    chain = [[a["id"], b["id"]] for a, b in itertools.pairwise(nodes)]
    return {
        "name": fields.pop("name", "p"),
        "mode": fields.pop("mode", "batch"),
        "schedule": fields.pop("schedule", "0 * * * *"),
        "graph": {"nodes": nodes, "edges": edges if edges is not None else chain},
        **fields,
    }


def run(doc: RegistryDocument, env: dict[str, str], name: str = "p", **kw: Any) -> RunResult:
    """Run pipeline ``name`` of ``doc`` with environment ``env``."""
    plan = build_plan(
        next(p for p in doc.pipelines if p.name == name), presets_by_name(doc.presets)
    )
    return execute(plan, doc, run_id=uuid.uuid4().hex, environ=env, **kw)
