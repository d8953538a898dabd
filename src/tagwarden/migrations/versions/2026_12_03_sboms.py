"""The ``sboms`` table: one package list per platform digest (vulnerabilities/models.py).

Revision ID: 2026_12_03_sboms
Revises: 2026_12_02_request_states
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

TS = sa.DateTime(timezone=True)

revision: str = "2026_12_03_sboms"
down_revision: str | None = "2026_12_02_request_states"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sboms",
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=True),
        sa.Column("format", sa.String(32), nullable=True),
        sa.Column("packages", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('found', 'generated', 'no_sbom', 'error')", name=op.f("ck_sboms_status")
        ),
        sa.CheckConstraint(
            "source IN ('attestation', 'referrer', 'syft')", name=op.f("ck_sboms_source")
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_sboms")),
    )


def downgrade() -> None:
    op.drop_table("sboms")
