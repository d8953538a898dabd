"""What the in-process device index needs to stay in step across replicas: when each device's
poll-relevant state (key, state version, poll speed) last changed, and which devices were deleted.

Revision ID: 2026_11_24_device_state_index
Revises: 2026_11_24_rules_webhooks_notify
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_24_device_state_index"
down_revision: str | None = "2026_11_24_rules_webhooks_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
# SQLite adds a NOT NULL column only with a constant default; existing rows then get their
# real time from updated_at below (the index's full load reads every row whatever its time).
EPOCH = "1970-01-01 00:00:00+00:00"


def upgrade() -> None:
    op.add_column(
        "devices",
        sa.Column("state_changed_at", TS, server_default=EPOCH, nullable=False),
    )
    op.execute("UPDATE devices SET state_changed_at = updated_at")
    op.create_index(op.f("ix_devices_state_changed_at"), "devices", ["state_changed_at"])

    op.create_table(
        "device_deletions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("deleted_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_device_deletions_deleted_at"), "device_deletions", ["deleted_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_device_deletions_deleted_at"), table_name="device_deletions")
    op.drop_table("device_deletions")
    op.drop_index(op.f("ix_devices_state_changed_at"), table_name="devices")
    # Not batch mode: on SQLite that copies and drops the devices table, and dropping it would
    # cascade to device_apps. SQLite ≥ 3.35 drops an unindexed column in place.
    op.drop_column("devices", "state_changed_at")
