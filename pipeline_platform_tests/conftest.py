"""Shared fixtures: a real PostgreSQL server for the session, fresh databases per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_platform_tests.servers import create_database, private_postgres


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL server: ``PIPELINE_TEST_POSTGRES_URL`` or a private cluster."""
    given = os.environ.get("PIPELINE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    with private_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """URL of a new, empty PostgreSQL database."""
    return create_database(postgres_admin_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite database file."""
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    admin = request.getfixturevalue("postgres_admin_url")
    return create_database(admin)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a Kafka-protocol broker (librdkafka mock cluster, own process)."""
    from pipeline_platform_tests.kafka import mock_broker

    with mock_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the worker processes forked (one entry per ``forked_map`` call: its items)."""
    calls: list[int] = []
    from pipeline_platform.ingestion import processes

    real = processes.forked_map

    def counted(work: Any, items: Any, workers: int, **kwargs: Any) -> Any:
        calls.append(len(items))
        return real(work, items, workers, **kwargs)

    monkeypatch.setattr(processes, "forked_map", counted)
    return calls
