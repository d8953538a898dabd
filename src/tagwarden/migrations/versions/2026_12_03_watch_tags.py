"""``images.watch_tags``: tags whose re-push a rescan always looks for (``latest``, say).

Revision ID: 2026_12_03_watch_tags
Revises: 2026_12_04_rollout_controls
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_12_03_watch_tags"
down_revision: str | None = "2026_12_04_rollout_controls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(
            sa.Column("watch_tags", JSONType, server_default=sa.text("'[]'"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("watch_tags")
