"""The approvals page (seed 000, "Admin Panel → Approvals Page"): review, decide, history."""

from __future__ import annotations

import math
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tagwarden.approvals import approving, service
from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import (
    ALL,
    BOTH_DECIDED,
    DECIDABLE,
    DECIDED,
    DecidedFilter,
    RequestAction,
    RequestStatus,
    StatusFilter,
    after,
)
from tagwarden.auth.deps import AppSettings, Session
from tagwarden.catalogue import service as catalogue
from tagwarden.db import utcnow
from tagwarden.errors import InvalidInput
from tagwarden.evidence.listing import page_evidence
from tagwarden.inputs import INT32_MAX
from tagwarden.vulnerabilities import service as vulnerabilities
from tagwarden.vulnerabilities.schemas import FindingOut
from tagwarden.web.card import card, human_bytes
from tagwarden.web.card_vulns import vulnerability_view
from tagwarden.web.render import WebRoute, back_url, page, redirect
from tagwarden.web.session import PostingUser, WebUser, need

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 50
GROWTH_MAX = 1_000_000


def growth_filter(grew: Annotated[str, Query(max_length=40)] = "") -> float | None:
    """The "grew more than N %" box: empty is no filter; anything else must be a percentage."""
    text = grew.strip().removesuffix("%").strip()
    if not text:
        return None
    try:
        percent = float(text)
    except ValueError:
        percent = math.nan
    if not math.isfinite(percent) or not 0 <= percent <= GROWTH_MAX:
        raise InvalidInput(
            f"grew: {grew!r} is not a percentage; give a number from 0 to {GROWTH_MAX}"
        )
    return percent


def image_filter(image_id: Annotated[str, Query(max_length=20)] = "") -> int | None:
    """The image select: its "All images" option sends an empty value, which is no filter."""
    text = image_id.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= INT32_MAX:
        raise InvalidInput(f"image_id: {image_id!r} is not an image id")
    return int(text)


GrowthFilter = Annotated[float | None, Depends(growth_filter)]
ImageFilter = Annotated[int | None, Depends(image_filter)]


def _reference(request: ApprovalRequest) -> str:
    return f"{request.image_name}:{request.tag_name}" if request.tag_name else request.image_name


@router.get("/approvals")
async def approvals(
    request: Request,
    session: Session,
    user: WebUser,
    image_id: ImageFilter,
    grew_over: GrowthFilter,
    status: StatusFilter = RequestStatus.PENDING.value,
    offset: Annotated[int, Query(ge=0)] = 0,
    unsigned: bool = False,
) -> HTMLResponse:
    grew = f"{grew_over:g}" if grew_over is not None else ""
    rows, total = await service.list_requests(
        session,
        status=None if status == ALL else status,
        image_id=image_id,
        unsigned=unsigned,
        grew_over=grew_over,
        limit=PAGE_SIZE,
        offset=offset,
    )
    found = await page_evidence(session, ((r.image_id, r.digest) for r in rows if r.tag_name))
    cards = {
        r.id: card(r.metadata_, found.of(r.image_id, r.digest), found.policy(r.image_id))
        for r in rows
        if r.tag_name
    }
    kept = {"status": status, "image_id": image_id, "unsigned": unsigned and "1", "grew": grew}
    base = "/approvals?" + urlencode({k: v for k, v in kept.items() if v})
    images, _ = await catalogue.list_images(session, limit=500)
    # An image-level request admits the image as it was asked for: its registry, filters and
    # schedule are what the approver approves, so the page shows them beside the request.
    asked_ids = {r.image_id for r in rows if r.tag_name is None}
    asked = await catalogue.images_by_id(session, asked_ids)
    return page(
        request,
        "approvals.html",
        {
            "rows": rows,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "status": status,
            "image_id": image_id,
            "images": images,
            "can_decide": user.has("approver"),
            "decidable": DECIDABLE,
            "statuses": [(s, s.capitalize()) for s in (*RequestStatus, ALL)],
            "reference": _reference,
            "asked": asked,
            "requester_of": service.requester_of,
            "identity": user.identity,
            "cards": cards,
            "unsigned": unsigned,
            "grew": grew,
            "filtered": unsigned or grew_over is not None,
            "base": base,
            "evidence_filters": True,
        },
    )


@router.get("/approvals/{request_id:int}")
async def detail(
    request: Request, request_id: int, session: Session, user: WebUser
) -> HTMLResponse:
    found = await service.get_request(session, request_id)
    evidence = await page_evidence(session, [(found.image_id, found.digest)])
    image = await catalogue.get_image(session, found.image_id)
    vulns = None
    if found.tag_name:
        vulns = vulnerability_view(
            evidence.of(found.image_id, found.digest).vulnerabilities,
            await vulnerabilities.vulnerability_policy(session, found.image_id),
            [
                FindingOut.model_validate(f)
                for f in await vulnerabilities.findings_of(session, found.image_id, found.digest)
            ],
            now=utcnow(),
        )
    return page(
        request,
        "request.html",
        {
            "r": found,
            "ref": _reference(found),
            "image": image,
            "card": card(
                found.metadata_,
                evidence.of(found.image_id, found.digest),
                evidence.policy(found.image_id),
            )
            if found.tag_name
            else None,
            "vulns": vulns,
            "can_decide": user.has("approver"),
            "own": not found.tag_name and service.requester_of(found) == user.identity,
            "requester_of": service.requester_of,
            "human_bytes": human_bytes,
        },
    )


@router.get("/approvals/history")
async def history(
    request: Request,
    session: Session,
    _: WebUser,
    image_id: ImageFilter,
    status: DecidedFilter = BOTH_DECIDED,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> HTMLResponse:
    wanted = DECIDED if status == BOTH_DECIDED else (status,)
    merged, total = await service.list_requests(
        session, status=wanted, image_id=image_id, limit=PAGE_SIZE, offset=offset
    )
    images, _count = await catalogue.list_images(session, limit=500)
    return page(
        request,
        "history.html",
        {
            "rows": merged,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "status": status,
            "image_id": image_id,
            "images": images,
            "reference": _reference,
            "statuses": [
                (BOTH_DECIDED, "Approved and rejected"),
                *((s, s.capitalize()) for s in DECIDED),
            ],
        },
    )


@router.post("/approvals/{request_id}/decide")
async def decide(
    request: Request,
    request_id: int,
    session: Session,
    user: PostingUser,
    settings: AppSettings,
    decision: Annotated[Literal["approve", "reject"], Form()],
    notes: Annotated[str, Form(max_length=5000)] = "",
) -> RedirectResponse:
    need(user, "approver")
    result = await approving.decide(
        session,
        request_id,
        approve=decision == "approve",
        notes=notes.strip() or None,
        actor=user,
        then=AfterApproval.of(settings),
    )
    verb = "Approved" if decision == "approve" else "Rejected"
    message = f"{verb} {_reference(result.request)}"
    if result.activation and result.activation.created:
        message += f" (activated: {', '.join(result.activation.created)})"
    return redirect(request, back_url(request, "/approvals"), message)


@router.post("/approvals/bulk")
async def bulk(
    request: Request,
    session: Session,
    user: PostingUser,
    settings: AppSettings,
    action: Annotated[Literal["approve", "reject"], Form()],
    ids: Annotated[list[int], Form()] = [],  # noqa: B006 - FastAPI copies defaults per request
    notes: Annotated[str, Form(max_length=5000)] = "",
) -> RedirectResponse:
    need(user, "approver")
    if not ids:
        return redirect(request, back_url(request, "/approvals"), "Select requests first", "error")
    items = await approving.bulk_decide(
        session,
        ids[:500],
        approve=action == "approve",
        notes=notes.strip() or None,
        actor=user,
        then=AfterApproval.of(settings),
    )
    done = sum(1 for i in items if i.error is None)
    failed = [f"#{i.request_id}: {i.error.detail}" for i in items if i.error is not None]
    verb = after(RequestStatus.PENDING, RequestAction(action))
    message = f"{done} request{'s' if done != 1 else ''} {verb}"
    if failed:
        message += "; not changed: " + "; ".join(failed)
    return redirect(
        request, back_url(request, "/approvals"), message, "error" if failed and not done else "ok"
    )
