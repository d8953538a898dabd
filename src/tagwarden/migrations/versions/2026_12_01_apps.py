"""App definitions: the container configuration a device runs for each app.

Revision ID: 2026_12_01_apps
Revises: 2026_12_01_hardening
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_12_01_apps"
down_revision: str | None = "2026_12_01_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey("images.id", name=op.f("fk_apps_image_id_images"), ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_apps_name")),
    )
    op.create_index(op.f("ix_apps_image_id"), "apps", ["image_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_apps_image_id"), table_name="apps")
    op.drop_table("apps")
