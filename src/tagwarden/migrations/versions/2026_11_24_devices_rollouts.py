"""Devices, their target state (device_apps), rollouts and per-device rollout progress.

Revision ID: 2026_11_24_devices_rollouts
Revises: 2026_11_24_initial
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_11_24_devices_rollouts"
down_revision: str | None = "2026_11_24_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(
        f"{target}.id", ondelete=ondelete, name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("architecture", sa.String(32), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("state_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("fast_poll", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_seen_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("uuid", name=op.f("uq_devices_uuid")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_devices_key_hash")),
    )
    op.create_index(op.f("ix_devices_architecture"), "devices", ["architecture"])

    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer(),
            _fk("rollouts", "image_id", "images", "RESTRICT"),
            nullable=False,
        ),
        sa.Column("image", sa.String(500), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("app_name", sa.String(100), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("options", JSONType, nullable=False),
        sa.Column("target_devices", JSONType, nullable=False),
        sa.Column("selector", JSONType),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("current_batch", sa.Integer()),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("failures_at_resume", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index(op.f("ix_rollouts_image_id"), "rollouts", ["image_id"])
    op.create_index(op.f("ix_rollouts_status"), "rollouts", ["status"])

    op.create_table(
        "device_apps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "device_id",
            sa.Integer(),
            _fk("device_apps", "device_id", "devices", "CASCADE"),
            nullable=False,
        ),
        sa.Column("app_name", sa.String(100), nullable=False),
        sa.Column("image_id", sa.Integer(), _fk("device_apps", "image_id", "images", "SET NULL")),
        sa.Column("image", sa.String(500)),
        sa.Column("tag", sa.String(128)),
        sa.Column("digest", sa.String(100)),
        sa.Column(
            "rollout_id", sa.Integer(), _fk("device_apps", "rollout_id", "rollouts", "SET NULL")
        ),
        sa.Column("target_updated_at", TS),
        sa.Column("current_image", sa.String(600)),
        sa.Column("current_digest", sa.String(100)),
        sa.Column("status", sa.String(16)),
        sa.Column("health", sa.String(16)),
        sa.Column("reason", sa.String(32)),
        sa.Column("message", sa.Text()),
        sa.Column("reported_at", TS),
        sa.UniqueConstraint(
            "device_id", "app_name", name=op.f("uq_device_apps_device_id_app_name")
        ),
    )

    op.create_table(
        "rollout_devices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "rollout_id",
            sa.Integer(),
            _fk("rollout_devices", "rollout_id", "rollouts", "CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "device_id",
            sa.Integer(),
            _fk("rollout_devices", "device_id", "devices", "CASCADE"),
            nullable=False,
        ),
        sa.Column("app_name", sa.String(100), nullable=False),
        sa.Column("batch", sa.Integer()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("skip_reason", sa.String(32)),
        sa.Column("failure_reason", sa.String(32)),
        sa.Column("message", sa.Text()),
        sa.Column("had_previous", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("previous_image_id", sa.Integer()),
        sa.Column("previous_image", sa.String(500)),
        sa.Column("previous_tag", sa.String(128)),
        sa.Column("previous_digest", sa.String(100)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("scheduled_at", TS),
        sa.Column("deadline_at", TS),
        sa.Column("healthy_since", TS),
        sa.Column("finished_at", TS),
        sa.UniqueConstraint(
            "rollout_id", "device_id", name=op.f("uq_rollout_devices_rollout_id_device_id")
        ),
    )
    op.create_index(op.f("ix_rollout_devices_device_id"), "rollout_devices", ["device_id"])
    op.create_index("ix_rollout_devices_rollout_batch", "rollout_devices", ["rollout_id", "batch"])
    # One active rollout per device and app, decided by the database (see rollouts/models.py).
    op.create_index(
        "uq_rollout_devices_one_active",
        "rollout_devices",
        ["device_id", "app_name"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )


def downgrade() -> None:
    for table in ("rollout_devices", "device_apps", "rollouts", "devices"):
        op.drop_table(table)
