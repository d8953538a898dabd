"""The rollout, rollout-device and device-app state columns hold only their machines' values.

The values are written out here, not read from the enums: this migration stays what it was
when a later one widens a machine.

Revision ID: 2026_12_02_rollout_states
Revises: 2026_12_01_apps
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "2026_12_02_rollout_states"
down_revision: str | None = "2026_12_01_apps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "rollouts": {
        "status": ("pending", "running", "paused", "completed", "failed", "aborted", "rolled_back"),
    },
    "rollout_devices": {
        "state": (
            "pending",
            "scheduled",
            "updating",
            "succeeded",
            "failed",
            "rolled_back",
            "skipped",
        ),
    },
    "device_apps": {
        "status": ("downloading", "installing", "running", "failed"),
        "health": ("healthy", "unhealthy", "unknown"),
    },
}


def _refuse_cascades() -> None:
    # SQLite adds a CHECK only by copying the table and dropping the old one; with foreign keys
    # on, dropping rollouts would first delete its rollout_devices (ON DELETE CASCADE) and
    # clear device_apps.rollout_id. tagwarden.migrations.upgrade turns them off around the
    # migration; refuse to run where something else left them on.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("foreign keys are on: run this migration through `tagwarden db upgrade`")


def upgrade() -> None:
    _refuse_cascades()
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column, values in columns.items():
                listed = ", ".join(f"'{v}'" for v in values)
                batch.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), f"{column} IN ({listed})"
                )


def downgrade() -> None:
    _refuse_cascades()
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
