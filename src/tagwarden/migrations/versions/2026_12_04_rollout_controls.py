"""A continuous rollout's closing time, and the finished devices a resume accepts.

Revision ID: 2026_12_04_rollout_controls
Revises: 2026_12_03_prefetch
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_04_rollout_controls"
down_revision: str | None = "2026_12_03_prefetch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("finished_at_resume", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("finished_at_resume")
        batch.drop_column("closed_at")
