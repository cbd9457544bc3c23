"""Table pipelines: module catalog fields, presets, pipeline time zone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MODULE_COLUMNS = (
    ("display_name", sa.String(255), ""),
    ("category", sa.String(63), ""),
    ("version", sa.String(32), "1.0.0"),
    ("icon", sa.String(63), ""),
    ("documentation_url", sa.String(1024), ""),
    ("tags", sa.Text(), "[]"),
    ("required_connections", sa.Text(), "[]"),
    ("input_schema", sa.Text(), "{}"),
    ("output_schema", sa.Text(), "{}"),
)


def upgrade() -> None:
    """Add the catalog fields, the presets table, pipelines.timezone."""
    with op.batch_alter_table("modules") as batch:
        for name, type_, default in _MODULE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=default))
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
    op.create_table(
        "module_presets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("module", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("config", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_module_presets"),
        sa.UniqueConstraint("name", name="uq_module_presets_name"),
    )


def downgrade() -> None:
    """Remove what :func:`upgrade` added."""
    op.drop_table("module_presets")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("modules") as batch:
        for name, _, _ in reversed(_MODULE_COLUMNS):
            batch.drop_column(name)
