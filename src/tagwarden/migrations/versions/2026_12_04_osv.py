"""OSV records and their (ecosystem, name) index, findings per platform digest, the
vulnerability evidence and policy columns, and recalls on image_tags.

Revision ID: 2026_12_04_osv
Revises: 2026_12_03_watch_tags
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

TS = sa.DateTime(timezone=True)

revision: str = "2026_12_04_osv"
down_revision: str | None = "2026_12_03_watch_tags"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "osv_records",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("modified", TS, nullable=False),
        sa.Column("published", TS, nullable=True),
        sa.Column("aliases", JSONType, nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("imported_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_osv_records")),
    )
    op.create_index(op.f("ix_osv_records_modified"), "osv_records", ["modified"])
    op.create_table(
        "osv_affected",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=False),
        sa.Column("ecosystem", sa.String(100), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("ranges", JSONType, nullable=False),
        sa.Column("versions", JSONType, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["osv_records.id"],
            name=op.f("fk_osv_affected_record_id_osv_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_osv_affected")),
    )
    op.create_index("ix_osv_affected_ecosystem_name", "osv_affected", ["ecosystem", "name"])
    op.create_index(op.f("ix_osv_affected_record_id"), "osv_affected", ["record_id"])
    op.create_table(
        "vulnerability_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("osv_id", sa.String(200), nullable=False),
        sa.Column("package", sa.String(300), nullable=False),
        sa.Column("ecosystem", sa.String(100), nullable=False),
        sa.Column("installed", sa.String(200), nullable=False),
        sa.Column("fixed_in", sa.String(200), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("aliases", JSONType, nullable=False),
        sa.Column("found_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulnerability_findings")),
        sa.UniqueConstraint(
            "digest",
            "osv_id",
            "package",
            "installed",
            name=op.f("uq_vulnerability_findings_digest_osv_id_package_installed"),
        ),
    )
    op.create_index(op.f("ix_vulnerability_findings_digest"), "vulnerability_findings", ["digest"])
    with op.batch_alter_table("digest_evidence") as batch:
        batch.add_column(sa.Column("vulnerabilities", JSONType, nullable=True))
    with op.batch_alter_table("image_policies") as batch:
        batch.add_column(sa.Column("vulnerability_policy", JSONType, nullable=True))
    with op.batch_alter_table("image_tags") as batch:
        batch.add_column(
            sa.Column("is_recalled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("recall_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("recalled_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_tags") as batch:
        batch.drop_column("recalled_at")
        batch.drop_column("recall_reason")
        batch.drop_column("is_recalled")
    with op.batch_alter_table("image_policies") as batch:
        batch.drop_column("vulnerability_policy")
    with op.batch_alter_table("digest_evidence") as batch:
        batch.drop_column("vulnerabilities")
    op.drop_table("vulnerability_findings")
    op.drop_table("osv_affected")
    op.drop_table("osv_records")
