"""Approval requests: reading them, and every way one is made or closed without a decision —
by the monitor or a webhook's check, by a person, for an image asked into the catalogue, and
superseded by a re-push. Deciding is in approvals.decisions, what follows in approvals.approving.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import metadata as meta
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestAction, RequestStatus, after
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue import service as catalogue
from tagwarden.catalogue.models import Image
from tagwarden.catalogue.schemas import ImageCreate
from tagwarden.catalogue.states import ImageStatus
from tagwarden.config import Settings
from tagwarden.db import insert_for, utcnow
from tagwarden.errors import Conflict, NotFound
from tagwarden.evidence import listing
from tagwarden.notify.service import emit, emit_many


async def get_request(session: AsyncSession, request_id: int) -> ApprovalRequest:
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    return request


async def list_requests(
    session: AsyncSession,
    *,
    status: str | Collection[str] | None = RequestStatus.PENDING,
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
    queue = status == RequestStatus.PENDING
    order = ApprovalRequest.id.asc() if queue else ApprovalRequest.id.desc()
    rows = await session.scalars(query.order_by(order).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A request to be created: which image and tag, and what the registry (or a person) said."""

    image_id: int
    image_name: str
    tag_name: str | None
    metadata: dict[str, Any]

    @property
    def judged_by_rules(self) -> bool:
        """Rules judge only what a registry said (the monitor, a webhook's check). A manual
        request's metadata is typed by a person: a rule acting on its date or digest would let
        one approver activate anything, past four-eyes."""
        return self.tag_name is not None and self.metadata.get("source", "manual") != "manual"


async def create_request(
    session: AsyncSession, draft: NewRequest, *, actor: str
) -> ApprovalRequest:
    """Insert one pending request (see :func:`create_requests`); a second pending one for the
    same tag is a 409."""
    (created,) = await create_requests(session, [draft], actor=actor)
    if created is None:
        existing = await session.scalar(
            select(ApprovalRequest.id).where(
                ApprovalRequest.image_id == draft.image_id,
                ApprovalRequest.tag_name == draft.tag_name,
                ApprovalRequest.status == RequestStatus.PENDING,
            )
        )
        raise Conflict(
            f"{draft.image_name}:{draft.tag_name} already has a pending approval request "
            f"(#{existing})",
            code="request_pending",
        )
    return await get_request(session, created)


async def create_requests(
    session: AsyncSession, drafts: Sequence[NewRequest], *, actor: str
) -> list[int | None]:
    """Insert pending requests in one statement, with their audit entries and notifications.
    Returns each draft's new request id, or None where the tag already has a pending request.

    The database refuses a second pending request for a tag (a partial unique index), and
    ``ON CONFLICT DO NOTHING`` turns that into a skipped row: two monitor replicas racing on one
    tag, or a double submit, cost neither a savepoint nor an aborted transaction. The images'
    rules are the caller's next step (rules.service.judge_new), not this one's.
    """
    if not drafts:
        return []
    new_ids = await _insert_pending(session, drafts, actor=actor)
    created = [new_ids.pop((d.image_id, d.tag_name), None) for d in drafts]  # duplicate: None
    made = [(request_id, d) for request_id, d in zip(created, drafts, strict=True) if request_id]
    await audit.record_many(
        session,
        [
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
            for request_id, d in made
        ],
    )
    await emit_many(
        session,
        [
            (
                "approval.requested",
                payload_of(request_id, d.image_id, d.image_name, d.tag_name, d.metadata),
            )
            for request_id, d in made
        ],
    )
    return created


async def _insert_pending(
    session: AsyncSession, drafts: Sequence[NewRequest], *, actor: str
) -> dict[tuple[int, str | None], int]:
    """(image id, tag) → the new request's id, for the drafts the database took."""
    table = ApprovalRequest.__table__
    requested_at = utcnow()
    statement = (
        insert_for(session)(table)
        .on_conflict_do_nothing(
            # Spelled exactly as the index is (see the migration): SQLite matches the text.
            index_elements=[table.c.image_id, text("coalesce(tag_name, '')")],
            index_where=text(f"status = '{RequestStatus.PENDING}'"),
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
                "status": RequestStatus.PENDING,
                "metadata": d.metadata,
                "digest": d.metadata.get("digest"),
                "requested_at": requested_at,
                "requested_by": actor,
            }
            for d in drafts
        ],
    )
    return {(image_id, tag): rid for rid, image_id, tag in inserted.all()}


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
    status: str = RequestStatus.PENDING,
    reviewed_by: str | None = None,
) -> dict[str, Any]:
    """What notifications say about a request (never the whole metadata)."""
    return {
        "request_id": request_id,
        "image_id": image_id,
        "image": image_name,
        "tag": tag_name,
        "digest": metadata.get("digest"),
        "status": str(status),
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
) -> ApprovalRequest:
    image = await catalogue.get_image(session, image_id)
    if image.approval_status != ImageStatus.APPROVED:
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; approve the image before "
            "its tags",
            code="image_not_approved",
        )
    checked = meta.validate(dict(metadata), require_architectures=True)
    checked["source"] = "manual"
    checked.setdefault("auto_detected", False)
    draft = NewRequest(image.id, image.display_name, tag_name, checked)
    return await create_request(session, draft, actor=actor.identity)


async def add_image(
    session: AsyncSession, data: ImageCreate, actor: Principal, settings: Settings
) -> Image:
    """Add an image to the catalogue: an admin's is admitted at once; anyone else's waits for
    its image-level request (``tag_name`` null), which another approver decides."""
    image = await catalogue.add_image(session, data, actor, settings)
    if image.approval_status == ImageStatus.PENDING:
        draft = NewRequest(
            image.id, image.display_name, None, {"source": "manual", "requested_by": actor.identity}
        )
        await create_request(session, draft, actor=actor.identity)
    return image


async def supersede(
    session: AsyncSession,
    request_id: int,
    *,
    digest: str | None,
    new_digest: str | None,
    actor: str,
    now: datetime,
) -> bool:
    """Close a pending request whose tag was re-pushed: it no longer describes what would
    deploy. It ends rejected (the seeds know three statuses), said so in its notes, its audit
    entry ``approval.superseded`` and its own event of that name. False when a person decided it
    a moment ago: theirs is the decision on record."""
    status = after(RequestStatus.PENDING, RequestAction.SUPERSEDE)
    superseded = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request_id, ApprovalRequest.status == RequestStatus.PENDING)
        .values(
            status=status,
            reviewed_by=actor,
            reviewed_at=now,
            notes=f"superseded: the tag was re-pushed as {new_digest}",
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(superseded, "rowcount", 0) != 1:
        return False
    audit.record(
        session,
        actor=actor,
        action="approval.superseded",
        entity_type="approval_request",
        entity_id=request_id,
        before={"status": RequestStatus.PENDING, "digest": digest},
        after={"status": status, "new_digest": new_digest},
    )
    request = await session.get(ApprovalRequest, request_id, populate_existing=True)
    if request is not None:
        await emit(session, "approval.superseded", event_payload(request))
    return True


def requester_of(request: ApprovalRequest) -> str | None:
    """Who asked, as recorded when the request was made (requests made before the column was
    filled carry it in their metadata)."""
    recorded = request.requested_by or request.metadata_.get("requested_by")
    return str(recorded) if recorded else None
