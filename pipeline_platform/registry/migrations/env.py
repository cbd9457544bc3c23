"""Alembic environment of the registry.

Run programmatically by :func:`pipeline_platform.registry.database.upgrade_registry`, which passes
an open connection in ``config.attributes["connection"]``. Without one (the ``alembic`` command
line), the URL comes from the ``sqlalchemy.url`` option or ``PIPELINE_REGISTRY_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pipeline_platform.config import load_settings
from pipeline_platform.registry.models import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database (``alembic upgrade --sql``)."""
    url = config.get_main_option("sqlalchemy.url") or load_settings().registry_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from pipeline_platform.registry.database import create_registry_engine

    url = config.get_main_option("sqlalchemy.url") or load_settings().registry_url
    engine = create_registry_engine(url)
    try:
        with engine.begin() as new_connection:
            _configure(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
