"""CHECK constraints on the approval request's and the image's status columns: the database
holds them to their state machines (approvals/states.py, catalogue/states.py).

Revision ID: 2026_12_02_request_states
Revises: 2026_12_02_download_bytes
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_02_request_states"
down_revision: str | None = "2026_12_02_download_bytes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported: a migration says what the schema was on its day.
CHECKS = (
    (
        "images",
        "ck_images_approval_status",
        "approval_status IN ('pending', 'approved', 'rejected')",
    ),
    (
        "image_approval_requests",
        "ck_image_approval_requests_status",
        "status IN ('pending', 'approved', 'rejected')",
    ),
)
ONE_PENDING = "uq_image_approval_requests_one_pending"


def _refuse_with_foreign_keys_on() -> None:
    """SQLite changes a constraint by rebuilding the table, and dropping the old ``images`` with
    foreign keys on would cascade into every table that references it. ``tagwarden db upgrade``
    switches them off first (tagwarden.migrations.upgrade); anything else is refused."""
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite's foreign keys are on: run this migration through `tagwarden db upgrade`"
        )


def _one_pending_index() -> None:
    # SQLite cannot reflect this expression index, so a rebuilt table comes back without it.
    op.create_index(
        ONE_PENDING,
        "image_approval_requests",
        ["image_id", sa.text("coalesce(tag_name, '')")],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, name, condition in CHECKS:
            op.create_check_constraint(op.f(name), table, condition)
        return
    _refuse_with_foreign_keys_on()
    for table, name, condition in CHECKS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.create_check_constraint(op.f(name), sa.text(condition))
    op.execute(f"DROP INDEX IF EXISTS {ONE_PENDING}")
    _one_pending_index()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, name, _ in CHECKS:
            op.drop_constraint(op.f(name), table, type_="check")
        return
    _refuse_with_foreign_keys_on()
    for table, name, _ in CHECKS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(op.f(name), type_="check")
    op.execute(f"DROP INDEX IF EXISTS {ONE_PENDING}")
    _one_pending_index()
