"""Deciding a request: one approver's yes or no, four-eyes (the image's required number of
distinct approvers), and the request's status once it is decided. What follows an approval
(activation, auto-rollout) is approvals.approving's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalDecision, ApprovalRequest
from tagwarden.approvals.service import event_payload, requester_of
from tagwarden.approvals.states import RequestAction, RequestStatus, after
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue import service as catalogue
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.catalogue.states import ImageAction
from tagwarden.db import insert_for, utcnow
from tagwarden.errors import Conflict, Forbidden, NotFound
from tagwarden.notify.service import emit

DECISION_FIELDS = ("status", "reviewed_by", "reviewed_at", "notes")


@dataclass(frozen=True)
class Decided:
    """A decision recorded: the request (decided, or still pending for more approvers)."""

    request: ApprovalRequest
    approvals: int = 0
    required_approvals: int = 1

    @property
    def approved(self) -> bool:
        return self.request.status == RequestStatus.APPROVED


async def decide(
    session: AsyncSession,
    request_id: int,
    *,
    approve: bool,
    notes: str | None,
    actor: Principal,
    required_approvals: int | None = None,
    failed_checks: Sequence[dict[str, Any]] = (),
) -> Decided:
    """Approve or reject a pending request (four-eyes: the image's ``required_approvals``
    distinct approvers approve it; one reject decides). ``required_approvals`` overrides the
    image's (a rule's decision is one, and final). ``failed_checks`` are the evidence checks
    the approver approved past (policy ``warn``), written in the audit entry."""
    action = RequestAction.APPROVE if approve else RequestAction.REJECT
    request = await _lock_pending(session, request_id)
    if approve and request.tag_name is None and requester_of(request) == actor.identity:
        # Admitting an image lets its tags (and its registry host) in: asking and approving
        # must be two people, whatever four-eyes the image has. Withdrawing (rejecting) one's
        # own request stays allowed.
        raise Forbidden(
            f"you asked for {request.image_name} to be added; another approver must approve it",
            code="own_request",
        )
    required = required_approvals or await required_approvals_of(session, request.image_id)
    recorded = await record(session, request.id, actor.identity, action, notes)
    count = await approvals(session, request.id)
    if approve and not recorded:
        raise Conflict(
            f"{actor.identity} has already approved request {request_id}; it needs {required} "
            f"distinct approvers ({count} so far)",
            code="already_approved_by_you",
        )
    if approve and count < required:
        audit.record(
            session,
            actor=actor.identity,
            action="approval.approval_recorded",
            entity_type="approval_request",
            entity_id=request.id,
            after={"approvals": count, "required_approvals": required, "notes": notes}
            | _warned(failed_checks),
        )
        return Decided(request, approvals=count, required_approvals=required)
    await _close(session, request, action, notes=notes, actor=actor, failed_checks=failed_checks)
    return Decided(request, approvals=count, required_approvals=required)


async def _lock_pending(session: AsyncSession, request_id: int) -> ApprovalRequest:
    """The request, its row locked first by a conditional UPDATE that changes nothing
    (``… WHERE status = 'pending'``): concurrent decisions on one request queue there, each then
    sees the others' committed decisions, so approvals are neither lost nor counted twice, and
    once the request is decided every later call sees a conflict."""
    locked = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request_id, ApprovalRequest.status == RequestStatus.PENDING)
        .values(status=ApprovalRequest.status)
        .execution_options(synchronize_session=False)
    )
    request = await session.get(ApprovalRequest, request_id, populate_existing=True)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    if getattr(locked, "rowcount", 0) != 1:
        raise Conflict(
            f"approval request {request_id} is already {request.status}"
            + (f" (by {request.reviewed_by})" if request.reviewed_by else ""),
            code="already_decided",
        )
    return request


async def _close(
    session: AsyncSession,
    request: ApprovalRequest,
    action: RequestAction,
    *,
    notes: str | None,
    actor: Principal,
    failed_checks: Sequence[dict[str, Any]] = (),
) -> None:
    """Write the decision on the request, with its audit entry and event; a rejected
    image-level request refuses its image."""
    before = request.status
    status = after(before, action)
    await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id)
        .values(status=status, reviewed_by=actor.identity, reviewed_at=utcnow(), notes=notes)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(request)
    audit.record(
        session,
        actor=actor.identity,
        action=f"approval.{status}",
        entity_type="approval_request",
        entity_id=request.id,
        before={"status": before},
        after=audit.snapshot(request, DECISION_FIELDS) | _warned(failed_checks),
    )
    await emit(session, f"approval.{status}", event_payload(request))
    if action is RequestAction.REJECT and request.tag_name is None:
        image = await catalogue.get_image(session, request.image_id)
        await catalogue.change_status(
            session, image, ImageAction.REFUSE, actor=actor.identity, request_id=request.id
        )


def _warned(failed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The failed checks a person approved past (policy ``warn``), for the audit entry."""
    return {"failed_checks": list(failed)} if failed else {}


async def required_approvals_of(session: AsyncSession, image_id: int) -> int:
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
    if decision == RequestAction.REJECT:
        statement = statement.on_conflict_do_update(
            index_elements=["request_id", "identity"],
            set_={"decision": RequestAction.REJECT, "notes": notes, "decided_at": utcnow()},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["request_id", "identity"])
    result = await session.execute(statement)
    return getattr(result, "rowcount", 0) == 1


async def approvals(session: AsyncSession, request_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            ApprovalDecision.request_id == request_id,
            ApprovalDecision.decision == RequestAction.APPROVE,
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
