"""Approval rules and holds, per-image policy (four-eyes, webhook secret, rollout template),
approval decisions, notification channels and the notification outbox.

Revision ID: 2026_11_24_rules_webhooks_notify
Revises: 2026_11_24_devices_rollouts
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tagwarden.db import JSONType

revision: str = "2026_11_24_rules_webhooks_notify"
down_revision: str | None = "2026_11_24_devices_rollouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(
        f"{target}.id", ondelete=ondelete, name=op.f(f"fk_{table}_{column}_{target}")
    )


def _check(table: str, name: str, condition: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(condition, name=op.f(f"ck_{table}_{name}"))


def upgrade() -> None:
    op.create_table(
        "approval_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "image_id", sa.Integer(), _fk("approval_rules", "image_id", "images"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("pattern", sa.String(500)),
        sa.Column("min_age_hours", sa.Integer(), server_default="0", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.UniqueConstraint("image_id", "name", name=op.f("uq_approval_rules_image_id_name")),
        _check("approval_rules", "kind", "kind IN ('patch', 'minor', 'range', 'regex')"),
        _check("approval_rules", "min_age_hours", "min_age_hours >= 0"),
    )
    op.create_index(op.f("ix_approval_rules_image_id"), "approval_rules", ["image_id"])

    op.create_table(
        "approval_rule_holds",
        sa.Column(
            "request_id",
            sa.Integer(),
            _fk("approval_rule_holds", "request_id", "image_approval_requests"),
            primary_key=True,
        ),
        sa.Column(
            "rule_id",
            sa.Integer(),
            _fk("approval_rule_holds", "rule_id", "approval_rules"),
            nullable=False,
        ),
        sa.Column("due_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_approval_rule_holds_due_at"), "approval_rule_holds", ["due_at"])

    op.create_table(
        "image_policies",
        sa.Column(
            "image_id",
            sa.Integer(),
            _fk("image_policies", "image_id", "images"),
            primary_key=True,
        ),
        sa.Column("required_approvals", sa.Integer(), server_default="1", nullable=False),
        sa.Column("webhook_secret_hash", sa.String(64)),
        sa.Column("rollout_template", JSONType),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(255)),
        _check("image_policies", "required_approvals", "required_approvals >= 1"),
    )

    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer(),
            _fk("approval_decisions", "request_id", "image_approval_requests"),
            nullable=False,
        ),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("notes", sa.Text()),
        sa.Column("decided_at", TS, nullable=False),
        sa.UniqueConstraint(
            "request_id", "identity", name=op.f("uq_approval_decisions_request_id_identity")
        ),
        _check("approval_decisions", "decision", "decision IN ('approve', 'reject')"),
    )
    op.create_index(op.f("ix_approval_decisions_request_id"), "approval_decisions", ["request_id"])

    op.create_table(
        "notification_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("events", JSONType, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.UniqueConstraint("name", name=op.f("uq_notification_channels_name")),
        _check("notification_channels", "kind", "kind IN ('slack', 'discord', 'webhook', 'email')"),
    )

    op.create_table(
        "notification_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(36), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("key", name=op.f("uq_notification_events_key")),
    )
    op.create_index(op.f("ix_notification_events_event"), "notification_events", ["event"])

    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "event_id",
            sa.Integer(),
            _fk("notification_deliveries", "event_id", "notification_events"),
            nullable=False,
        ),
        sa.Column(
            "channel_id",
            sa.Integer(),
            _fk("notification_deliveries", "channel_id", "notification_channels"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("delivered_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint(
            "event_id", "channel_id", name=op.f("uq_notification_deliveries_event_id_channel_id")
        ),
        _check("notification_deliveries", "status", "status IN ('pending', 'delivered', 'failed')"),
    )
    op.create_index(
        op.f("ix_notification_deliveries_event_id"), "notification_deliveries", ["event_id"]
    )
    op.create_index(
        op.f("ix_notification_deliveries_channel_id"), "notification_deliveries", ["channel_id"]
    )
    op.create_index(
        "ix_notification_deliveries_due", "notification_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    for table in (
        "notification_deliveries",
        "notification_events",
        "notification_channels",
        "approval_decisions",
        "image_policies",
        "approval_rule_holds",
        "approval_rules",
    ):
        op.drop_table(table)
