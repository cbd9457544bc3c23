"""The one factory that picks a warehouse backend from a URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from pipeline_platform.warehouse.base import Warehouse

POSTGRES_BACKENDS = ("postgresql", "postgres", "timescaledb")


def postgres_conninfo(url: str) -> str:
    """Turn a SQLAlchemy-style PostgreSQL URL into a libpq connection string.

    Args:
        url: ``postgresql+psycopg://user:password@host:port/db?sslmode=...`` (any driver suffix).

    Returns:
        A libpq conninfo string (never logged: it may hold a password).
    """
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    params: dict[str, Any] = {}
    if parsed.host:
        params["host"] = parsed.host
    if parsed.port:
        params["port"] = parsed.port
    if parsed.database:
        params["dbname"] = parsed.database
    if parsed.username:
        params["user"] = parsed.username
    if parsed.password is not None:
        params["password"] = parsed.password
    for name, value in parsed.query.items():
        params[name] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **params)


def backend_of(url: str) -> str:
    """Return ``postgresql`` or ``sqlite`` for a warehouse URL.

    Raises:
        ValueError: The URL names an unsupported backend.
    """
    backend = make_url(url).get_backend_name()
    if backend in POSTGRES_BACKENDS:
        return "postgresql"
    if backend == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported warehouse backend {backend!r} (use postgresql or sqlite)")


def connect_warehouse(
    url: str, *, connect_timeout: int | None = None, read_only: bool = False
) -> Warehouse:
    """Open a warehouse connection from a SQLAlchemy-style URL.

    Args:
        url: ``postgresql+psycopg://...`` (or ``postgresql://``) or ``sqlite:///path``.
        connect_timeout: Seconds to wait for the server (or a SQLite lock), if limited.
        read_only: Only read (SQLite: open read only, never creating the file).

    Returns:
        A connected warehouse.

    Raises:
        ValueError: The URL names an unsupported backend.
    """
    if backend_of(url) == "postgresql":
        from pipeline_platform.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(postgres_conninfo(url), connect_timeout=connect_timeout)
    from pipeline_platform.warehouse.sqlite import SqliteWarehouse

    return SqliteWarehouse(
        make_url(url).database or ":memory:",
        read_only=read_only,
        timeout=30.0 if connect_timeout is None else float(connect_timeout),
    )
