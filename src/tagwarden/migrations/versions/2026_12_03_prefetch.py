"""``device_apps.prefetch``: the target is to be downloaded now and switched to in the rollout's
next maintenance window (rollouts/windows.py).

Revision ID: 2026_12_03_prefetch
Revises: 2026_12_03_sboms
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_03_prefetch"
down_revision: str | None = "2026_12_03_sboms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_apps") as batch:
        batch.add_column(
            sa.Column("prefetch", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("device_apps") as batch:
        batch.drop_column("prefetch")
