"""Initial schema: catalogue, approval requests, discovered tags, API tokens, audit log.

Revision ID: 2026_11_24_initial
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_11_24_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("before", JSONType),
        sa.Column("after", JSONType),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_occurred_at"), "audit_log", ["occurred_at"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity_type", "entity_id"])

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_name", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("registry", sa.String(255), nullable=False),
        sa.Column("approval_status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("description", sa.Text()),
        sa.Column("watch_for_updates", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_checked_at", TS),
        sa.Column("next_check_at", TS),
        sa.Column("check_interval_minutes", sa.Integer()),
        sa.Column("tag_include", sa.String(500)),
        sa.Column("tag_exclude", sa.String(500)),
        sa.Column("tag_policy", sa.String(16), server_default="latest", nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint(
            "registry",
            "namespace",
            "image_name",
            name=op.f("uq_images_registry_namespace_image_name"),
        ),
    )
    op.create_index(op.f("ix_images_next_check_at"), "images", ["next_check_at"])

    op.create_table(
        "discovered_tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey(
                "images.id", ondelete="CASCADE", name=op.f("fk_discovered_tags_image_id_images")
            ),
            nullable=False,
        ),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(100)),
        sa.Column("architectures", JSONType, nullable=False),
        sa.Column("platforms", JSONType, nullable=False),
        sa.Column("last_updated", TS),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.UniqueConstraint("image_id", "tag", name=op.f("uq_discovered_tags_image_id_tag")),
    )
    op.create_index(op.f("ix_discovered_tags_image_id"), "discovered_tags", ["image_id"])

    op.create_table(
        "image_approval_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey(
                "images.id",
                ondelete="CASCADE",
                name=op.f("fk_image_approval_requests_image_id_images"),
            ),
            nullable=False,
        ),
        sa.Column("image_name", sa.String(255), nullable=False),
        sa.Column("tag_name", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("digest", sa.String(100)),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("requested_by", sa.String(255)),
        sa.Column("reviewed_at", TS),
        sa.Column("reviewed_by", sa.String(255)),
        sa.Column("notes", sa.Text()),
        sa.Column("processed_at", TS),
    )
    op.create_index(
        op.f("ix_image_approval_requests_image_id"), "image_approval_requests", ["image_id"]
    )
    op.create_index(
        op.f("ix_image_approval_requests_status"), "image_approval_requests", ["status"]
    )
    op.create_index(
        "ix_image_approval_requests_tag_digest",
        "image_approval_requests",
        ["image_id", "tag_name", "digest"],
    )
    # One pending request per image and tag, decided by the database (see approvals/models.py).
    op.create_index(
        "uq_image_approval_requests_one_pending",
        "image_approval_requests",
        ["image_id", sa.text("coalesce(tag_name, '')")],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "image_tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey(
                "images.id", ondelete="CASCADE", name=op.f("fk_image_tags_image_id_images")
            ),
            nullable=False,
        ),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(100)),
        sa.Column("platform_digest", sa.String(100)),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("last_updated", TS),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("is_recommended", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_deprecated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "approval_request_id",
            sa.Integer(),
            sa.ForeignKey(
                "image_approval_requests.id",
                ondelete="SET NULL",
                name=op.f("fk_image_tags_approval_request_id_image_approval_requests"),
            ),
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint(
            "image_id", "tag", "architecture", name=op.f("uq_image_tags_image_id_tag_architecture")
        ),
    )
    op.create_index(op.f("ix_image_tags_image_id"), "image_tags", ["image_id"])
    op.create_index("ix_image_tags_last_updated_desc", "image_tags", [sa.text("last_updated DESC")])

    if dialect == "postgresql":
        # Seed 000: "Indexes on critical fields (metadata GIN, last_updated)".
        op.create_index(
            "ix_image_tags_metadata_gin", "image_tags", ["metadata"], postgresql_using="gin"
        )
        op.create_index(
            "ix_image_approval_requests_metadata_gin",
            "image_approval_requests",
            ["metadata"],
            postgresql_using="gin",
        )
        # The audit log is append-only: the database refuses to rewrite history.
        op.execute(
            """
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only';
            END $$;
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    for table in (
        "image_tags",
        "image_approval_requests",
        "discovered_tags",
        "images",
        "audit_log",
        "api_tokens",
    ):
        op.drop_table(table)
