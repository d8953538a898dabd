"""Evidence per digest (signatures, sizes), signing keys, and the image policy's checks.

Revision ID: 2026_12_02_evidence
Revises: 2026_12_01_apps
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_12_02_evidence"
down_revision: str | None = "2026_12_02_rollout_states"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "digest_evidence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey(
                "images.id", name=op.f("fk_digest_evidence_image_id_images"), ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("signature", JSONType, nullable=True),
        sa.Column("size", JSONType, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("image_id", "digest", name=op.f("uq_digest_evidence_image_id_digest")),
    )
    op.create_index(op.f("ix_digest_evidence_image_id"), "digest_evidence", ["image_id"])
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_signing_keys_name")),
    )
    with op.batch_alter_table("image_policies") as batch:
        batch.add_column(sa.Column("signature_policy", JSONType, nullable=True))
        batch.add_column(sa.Column("size_policy", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_policies") as batch:
        batch.drop_column("size_policy")
        batch.drop_column("signature_policy")
    op.drop_table("signing_keys")
    op.drop_index(op.f("ix_digest_evidence_image_id"), table_name="digest_evidence")
    op.drop_table("digest_evidence")
