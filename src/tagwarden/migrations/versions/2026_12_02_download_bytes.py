"""What each device of a rollout downloads: the target's blobs its current image lacks.

Revision ID: 2026_12_02_download_bytes
Revises: 2026_12_02_evidence
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_02_download_bytes"
down_revision: str | None = "2026_12_02_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollout_devices") as batch:
        batch.add_column(sa.Column("download_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollout_devices") as batch:
        batch.drop_column("download_bytes")
