"""Registry database: engines, migrations and the cheap revision probe.

Nothing here connects at import time. Typical use::

    engine = create_registry_engine(settings.registry_url)
    upgrade_registry(engine)
    revision = current_revision(engine)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, select, update
from sqlalchemy.engine import make_url

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES, ModuleSpec
from pipeline_platform.registry.models import modules, registry_revisions

if TYPE_CHECKING:  # Alembic loads only when migrations are looked at (not to read the registry)
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_UPGRADE_LOCK_KEY = 0x5049_5045_5245_47  # "PIPEREG": advisory lock held while upgrading


def _enable_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    del connection_record
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def create_registry_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for the registry database.

    For SQLite the parent directory of the database file is created and foreign keys are
    enabled on every connection (``ON DELETE CASCADE`` depends on it).

    Args:
        url: SQLAlchemy URL of the registry (``PIPELINE_REGISTRY_URL``).
        **kwargs: Further arguments for :func:`sqlalchemy.create_engine`.

    Returns:
        The engine; no connection is opened yet.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def alembic_config(connection: Connection | None = None) -> Config:
    """Return an Alembic configuration for the registry migrations.

    Args:
        connection: The connection the migrations run on (none for offline SQL output).

    Returns:
        A configuration whose ``script_location`` is the package's migration directory.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with the package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no registry migrations found")
    return head


def schema_revision(engine: Engine) -> str | None:
    """Return the migration revision the database is at, or None when never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_registry(engine: Engine) -> None:
    """Create or upgrade the registry schema to the newest migration and sync the module catalog.

    Safe to run repeatedly: migrations already applied are skipped and the catalog rows are
    only written when they differ from :data:`BUILTIN_MODULES`.

    Args:
        engine: Engine of the registry database.
    """
    from alembic import command

    with engine.begin() as connection:
        # Processes starting together (code server, daemon, CLI) upgrade one at a time.
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
        elif connection.dialect.name == "sqlite":
            # Take the write lock now and run the DDL inside the transaction.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        command.upgrade(alembic_config(connection), "head")
        sync_modules(connection)


def _module_row(module: ModuleSpec) -> dict[str, Any]:
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    return {
        "name": module.name,
        "kind": module.kind,
        "description": module.description,
        "config_schema": dumps(module.config_schema),
        "display_name": module.display_name,
        "category": module.category,
        "version": module.version,
        "icon": module.icon,
        "documentation_url": module.documentation_url,
        "tags": dumps(list(module.tags)),
        "required_connections": dumps(list(module.connections)),
        "input_schema": dumps(module.input_schema),
        "output_schema": dumps(module.output_schema),
    }


_MODULE_FIELDS = (
    "name", "kind", "description", "config_schema", "display_name", "category", "version",
    "icon", "documentation_url", "tags", "required_connections", "input_schema", "output_schema",
)  # fmt: skip


def sync_modules(connection: Connection, catalog: tuple[ModuleSpec, ...] = BUILTIN_MODULES) -> None:
    """Make the ``modules`` table mirror the module catalog (insert, update, delete).

    Args:
        connection: A connection inside a transaction.
        catalog: The modules to mirror.
    """
    wanted = {module.name: _module_row(module) for module in catalog}
    present = {
        row.name: dict(row._mapping)
        for row in connection.execute(select(*(modules.c[name] for name in _MODULE_FIELDS)))
    }
    removed = sorted(set(present) - set(wanted))
    if removed:
        connection.execute(delete(modules).where(modules.c.name.in_(removed)))
    added = [row for name, row in wanted.items() if name not in present]
    if added:
        connection.execute(modules.insert(), added)
    for name, row in wanted.items():
        if name in present and present[name] != row:
            connection.execute(update(modules).where(modules.c.name == name).values(**row))


def current_revision(engine: Engine) -> int:
    """Return the latest registry revision number, 0 when nothing was imported yet.

    One indexed query (the maximum of the primary key), cheap enough to poll from a sensor.

    Args:
        engine: Engine of a migrated registry database.
    """
    with engine.connect() as connection:
        value = connection.execute(select(func.max(registry_revisions.c.revision))).scalar()
    return int(value or 0)
