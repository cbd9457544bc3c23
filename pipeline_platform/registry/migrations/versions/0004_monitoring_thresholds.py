"""Monitoring thresholds of ingested tables: lag in seconds and dead-letter ratio.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``max_lag_seconds`` and ``max_dead_letter_ratio`` to ``topic_table_configs``."""
    with op.batch_alter_table("topic_table_configs") as batch:
        batch.add_column(sa.Column("max_lag_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_dead_letter_ratio", sa.Float(), nullable=True))


def downgrade() -> None:
    """Remove the columns :func:`upgrade` added.

    Plain ``DROP COLUMN`` (SQLite 3.35+ has it): a batch copy of the table would break the
    views that read ``topic_table_configs`` on SQLite.
    """
    op.drop_column("topic_table_configs", "max_dead_letter_ratio")
    op.drop_column("topic_table_configs", "max_lag_seconds")
