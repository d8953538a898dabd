"""Four-eyes bookkeeping: each approver's decision on a request, and the image's requirement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.db import insert_for, utcnow
from tagwarden.rules.models import ApprovalDecision, ImagePolicy


async def required_approvals(session: AsyncSession, image_id: int) -> int:
    required = await session.scalar(
        select(ImagePolicy.required_approvals).where(ImagePolicy.image_id == image_id)
    )
    return int(required or 1)


async def record(
    session: AsyncSession, request_id: int, identity: str, decision: str, notes: str | None
) -> bool:
    """Record one identity's decision; False when that identity already approved.

    The unique key on (request, identity) answers a double submit or a race without a
    read-then-write. A reject replaces the identity's earlier approve: one may change one's mind
    to "no", and one reject decides anyway.
    """
    insert = insert_for(session)
    statement = insert(cast(Table, ApprovalDecision.__table__)).values(
        request_id=request_id,
        identity=identity,
        decision=decision,
        notes=notes,
        decided_at=utcnow(),
    )
    if decision == "reject":
        statement = statement.on_conflict_do_update(
            index_elements=["request_id", "identity"],
            set_={"decision": "reject", "notes": notes, "decided_at": utcnow()},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["request_id", "identity"])
    result = await session.execute(statement)
    return getattr(result, "rowcount", 0) == 1


async def approvals(session: AsyncSession, request_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            ApprovalDecision.request_id == request_id, ApprovalDecision.decision == "approve"
        )
    )
    return int(count or 0)


async def list_decisions(session: AsyncSession, request_id: int) -> Sequence[ApprovalDecision]:
    rows = await session.scalars(
        select(ApprovalDecision)
        .where(ApprovalDecision.request_id == request_id)
        .order_by(ApprovalDecision.id)
    )
    return rows.all()
