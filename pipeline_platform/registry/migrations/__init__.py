"""Alembic migrations of the registry schema (run with :func:`upgrade_registry`)."""
