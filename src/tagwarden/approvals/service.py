"""Approval requests and decisions (seed 000, step 2: review)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import metadata as meta
from tagwarden.approvals.activation import Activation, process
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue.service import get_image
from tagwarden.db import insert_for, utcnow
from tagwarden.errors import Conflict, DomainError, Forbidden, NotFound
from tagwarden.evidence import listing
from tagwarden.evidence import service as evidence
from tagwarden.evidence.sizing import size_gate
from tagwarden.notify.service import emit, emit_many
from tagwarden.rules import decisions

DECISION_FIELDS = ("status", "reviewed_by", "reviewed_at", "notes")


async def get_request(session: AsyncSession, request_id: int) -> ApprovalRequest:
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    return request


async def list_requests(
    session: AsyncSession,
    *,
    status: str | Collection[str] | None = "pending",
    image_id: int | None = None,
    unsigned: bool = False,
    grew_over: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[ApprovalRequest], int]:
    """Requests with that status (or any of those statuses): pending ones oldest first, as a
    queue; the others newest first. ``unsigned`` and ``grew_over`` (percent) keep the requests
    whose digest's evidence says so."""
    query = select(ApprovalRequest)
    if isinstance(status, str):
        query = query.where(ApprovalRequest.status == status)
    elif status:
        query = query.where(ApprovalRequest.status.in_(status))
    if image_id is not None:
        query = query.where(ApprovalRequest.image_id == image_id)
    if unsigned:
        query = query.where(listing.unsigned(ApprovalRequest.image_id, ApprovalRequest.digest))
    if grew_over is not None:
        dialect = session.get_bind().dialect.name
        query = query.where(
            listing.grew_over(
                ApprovalRequest.image_id, ApprovalRequest.digest, grew_over, dialect=dialect
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    order = ApprovalRequest.id.asc() if status == "pending" else ApprovalRequest.id.desc()
    rows = await session.scalars(query.order_by(order).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A request to be created: which image and tag, and what the registry (or a person) said."""

    image_id: int
    image_name: str
    tag_name: str | None
    metadata: dict[str, Any]


async def create_request(
    session: AsyncSession,
    *,
    image_id: int,
    image_name: str,
    tag_name: str | None,
    metadata: dict[str, Any],
    actor: str,
    now: datetime | None = None,
    auto_process: bool,
) -> ApprovalRequest:
    """Insert one pending request (see :func:`create_requests`); a second pending one for the
    same tag is a 409."""
    draft = NewRequest(image_id, image_name, tag_name, metadata)
    (created,) = await create_requests(
        session, [draft], actor=actor, now=now, auto_process=auto_process
    )
    if created is None:
        existing = await session.scalar(
            select(ApprovalRequest.id).where(
                ApprovalRequest.image_id == image_id,
                ApprovalRequest.tag_name == tag_name,
                ApprovalRequest.status == "pending",
            )
        )
        raise Conflict(
            f"{image_name}:{tag_name} already has a pending approval request (#{existing})",
            code="request_pending",
        )
    return await get_request(session, created)


async def create_requests(
    session: AsyncSession,
    drafts: Sequence[NewRequest],
    *,
    actor: str,
    now: datetime | None = None,
    auto_process: bool,
) -> list[int | None]:
    """Insert pending requests in one statement, with their audit entries and notifications.
    Returns each draft's new request id, or None where the tag already has a pending request.

    The database refuses a second pending request for a tag (a partial unique index), and
    ``ON CONFLICT DO NOTHING`` turns that into a skipped row: two monitor replicas racing on one
    tag, or a double submit, cost neither a savepoint nor an aborted transaction. The images'
    approval rules are evaluated at once (``now`` is the caller's clock): a rule may approve a
    request in this same transaction, or hold it until it is old enough. ``auto_process`` has
    no default on purpose: it is the caller's ``auto_process_approved`` setting, on every path,
    so a rule's approval activates a tag only where the operator allowed it.
    """
    if not drafts:
        return []
    table = ApprovalRequest.__table__
    requested_at = utcnow()
    statement = (
        insert_for(session)(table)
        .on_conflict_do_nothing(
            # Spelled exactly as the index is (see the migration): SQLite matches the text.
            index_elements=[table.c.image_id, text("coalesce(tag_name, '')")],
            index_where=text("status = 'pending'"),
        )
        .returning(table.c.id, table.c.image_id, table.c.tag_name)
    )
    # Executemany: one compiled statement, sent as multi-row VALUES batches by the driver layer.
    inserted = await session.execute(
        statement,
        [
            {
                "image_id": d.image_id,
                "image_name": d.image_name,
                "tag_name": d.tag_name,
                "status": "pending",
                "metadata": d.metadata,
                "digest": d.metadata.get("digest"),
                "requested_at": requested_at,
                "requested_by": actor,
            }
            for d in drafts
        ],
    )
    new_ids = {(image_id, tag): rid for rid, image_id, tag in inserted.all()}
    created: list[int | None] = []
    events: list[tuple[str, dict[str, Any]]] = []
    entries: list[dict[str, Any]] = []
    for d in drafts:
        request_id = new_ids.pop((d.image_id, d.tag_name), None)  # a duplicate draft: None
        created.append(request_id)
        if request_id is None:
            continue
        entries.append(
            {
                "actor": actor,
                "action": "approval.requested",
                "entity_type": "approval_request",
                "entity_id": request_id,
                "after": {
                    "image_id": d.image_id,
                    "tag_name": d.tag_name,
                    "digest": d.metadata.get("digest"),
                },
            }
        )
        events.append(
            (
                "approval.requested",
                payload_of(request_id, d.image_id, d.image_name, d.tag_name, d.metadata),
            )
        )
    await audit.record_many(session, entries)
    await emit_many(session, events)
    await _let_rules_decide(
        session,
        [(request_id, d) for request_id, d in zip(created, drafts, strict=True) if request_id],
        now=now or utcnow(),
        auto_process=auto_process,
    )
    return created


async def _let_rules_decide(
    session: AsyncSession,
    created: Sequence[tuple[int, NewRequest]],
    *,
    now: datetime,
    auto_process: bool,
) -> None:
    """Rules judge only what a registry said (the monitor, a webhook's check). A manual
    request's metadata is typed by a person: a rule acting on its date or digest would let one
    approver activate anything, past four-eyes.

    One query finds the images' rules; most images have none and cost nothing more. Each
    request is judged in its own savepoint (rules.service.evaluate_isolated): if activating
    fails (no architecture to activate, a bug, …), that request stays pending for a person
    instead of half-decided, its error is recorded, and the other requests and the scan go on.
    """
    # approvals → rules → approvals.decide: imported here, where the cycle is harmless.
    from tagwarden.rules.service import evaluate_isolated, rules_for_images

    judged = [
        (request_id, d)
        for request_id, d in created
        if d.tag_name is not None and d.metadata.get("source", "manual") != "manual"
    ]
    rules = await rules_for_images(session, {d.image_id for _, d in judged})
    for request_id, d in judged:
        if d.image_id not in rules:
            continue
        request = await get_request(session, request_id)
        await evaluate_isolated(
            session, request, now=now, auto_process=auto_process, rules=rules[d.image_id]
        )


def event_payload(request: ApprovalRequest) -> dict[str, Any]:
    return payload_of(
        request.id,
        request.image_id,
        request.image_name,
        request.tag_name,
        request.metadata_,
        status=request.status,
        reviewed_by=request.reviewed_by,
    )


def payload_of(
    request_id: int,
    image_id: int,
    image_name: str,
    tag_name: str | None,
    metadata: dict[str, Any],
    *,
    status: str = "pending",
    reviewed_by: str | None = None,
) -> dict[str, Any]:
    """What notifications say about a request (never the whole metadata)."""
    return {
        "request_id": request_id,
        "image_id": image_id,
        "image": image_name,
        "tag": tag_name,
        "digest": metadata.get("digest"),
        "status": status,
        "reviewed_by": reviewed_by,
        "source": str(metadata.get("source", "manual")),
        "reason": metadata.get("reason"),
    }


async def create_manual_request(
    session: AsyncSession,
    *,
    image_id: int,
    tag_name: str,
    metadata: dict[str, Any],
    actor: Principal,
    auto_process: bool,
) -> ApprovalRequest:
    image = await get_image(session, image_id)
    if image.approval_status != "approved":
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; approve the image before "
            "its tags",
            code="image_not_approved",
        )
    checked = meta.validate(dict(metadata), require_architectures=True)
    checked["source"] = "manual"
    checked.setdefault("auto_detected", False)
    return await create_request(
        session,
        image_id=image.id,
        image_name=image.display_name,
        tag_name=tag_name,
        metadata=checked,
        actor=actor.identity,
        auto_process=auto_process,
    )


def requester_of(request: ApprovalRequest) -> str | None:
    """Who asked, as recorded when the request was made (requests made before the column was
    filled carry it in their metadata)."""
    recorded = request.requested_by or request.metadata_.get("requested_by")
    return str(recorded) if recorded else None


@dataclass(frozen=True)
class DecisionResult:
    request: ApprovalRequest
    activation: Activation | None
    approvals: int = 0
    required_approvals: int = 1


async def decide(
    session: AsyncSession,
    request_id: int,
    *,
    approve: bool,
    notes: str | None,
    actor: Principal,
    auto_process: bool,
    required_approvals: int | None = None,
    by_rule: bool = False,
) -> DecisionResult:
    """Approve or reject a pending request (four-eyes: the image's ``required_approvals``
    distinct approvers approve it; one reject decides).

    The request row is locked first by a conditional UPDATE that changes nothing
    (``… WHERE status = 'pending'``): concurrent decisions on one request queue there, each then
    sees the others' committed decisions, so approvals are neither lost nor counted twice, and
    once the request is decided every later call sees a conflict. ``required_approvals``
    overrides the image's (a rule's decision is one, and final).
    """
    locked = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request_id, ApprovalRequest.status == "pending")
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
    if approve and request.tag_name is None and requester_of(request) == actor.identity:
        # Admitting an image lets its tags (and its registry host) in: asking and approving
        # must be two people, whatever four-eyes the image has. Withdrawing (rejecting) one's
        # own request stays allowed.
        raise Forbidden(
            f"you asked for {request.image_name} to be added; another approver must approve it",
            code="own_request",
        )
    warned: list[dict[str, Any]] = []
    if approve and request.tag_name is not None:
        # A rule approves only what passes: under ``warn`` the decision is a person's.
        warning = await evidence.signature_gate(
            session, request.image_id, request.digest, step="approval", strict=by_rule
        )
        warned += [warning.as_dict()] if warning else []
        warned += await size_gate(session, request.image_id, request.digest, strict=by_rule)
    status = "approved" if approve else "rejected"
    required = required_approvals or await decisions.required_approvals(session, request.image_id)
    recorded = await decisions.record(
        session, request.id, actor.identity, "approve" if approve else "reject", notes
    )
    count = await decisions.approvals(session, request.id)
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
            | _warned(warned),
        )
        return DecisionResult(request, None, approvals=count, required_approvals=required)
    await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request_id)
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
        before={"status": "pending"},
        after=audit.snapshot(request, DECISION_FIELDS) | _warned(warned),
    )
    await emit(session, f"approval.{status}", event_payload(request))
    activation = None
    if approve and auto_process:
        activation = await process(session, request.id, actor=actor)
    elif not approve and request.tag_name is None:
        image = await get_image(session, request.image_id)
        image.approval_status = "rejected"
    return DecisionResult(request, activation, approvals=count, required_approvals=required)


def _warned(failed: list[dict[str, Any]]) -> dict[str, Any]:
    """The failed checks a person approved past (policy ``warn``), for the audit entry."""
    return {"failed_checks": failed} if failed else {}


@dataclass(frozen=True)
class BulkItem:
    request_id: int
    status: str | None
    error: DomainError | None


async def bulk_decide(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    approve: bool,
    notes: str | None,
    actor: Principal,
    auto_process: bool,
) -> list[BulkItem]:
    """One result per id; each decision in its own savepoint so one failure spoils no other."""
    results: list[BulkItem] = []
    for request_id in dict.fromkeys(ids):
        try:
            async with session.begin_nested():
                decided = await decide(
                    session,
                    request_id,
                    approve=approve,
                    notes=notes,
                    actor=actor,
                    auto_process=auto_process,
                )
            results.append(BulkItem(request_id, decided.request.status, None))
        except DomainError as exc:
            results.append(BulkItem(request_id, None, exc))
    return results
