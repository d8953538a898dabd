"""The approvals page (seed 000, "Admin Panel → Approvals Page"): review, decide, history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
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
from tagwarden.catalogue import service as catalogue
from tagwarden.deps import AppSettings, Session
from tagwarden.web.render import WebRoute, back_url, page, redirect
from tagwarden.web.session import PostingUser, WebUser, need

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 50


def _reference(request: ApprovalRequest) -> str:
    return f"{request.image_name}:{request.tag_name}" if request.tag_name else request.image_name


@router.get("/approvals")
async def approvals(
    request: Request,
    session: Session,
    user: WebUser,
    status: StatusFilter = RequestStatus.PENDING.value,
    image_id: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows, total = await service.list_requests(
        session,
        status=None if status == ALL else status,
        image_id=image_id,
        limit=PAGE_SIZE,
        offset=offset,
    )
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
        },
    )


@router.get("/approvals/history")
async def history(
    request: Request,
    session: Session,
    _: WebUser,
    status: DecidedFilter = BOTH_DECIDED,
    image_id: Annotated[int | None, Query(ge=1)] = None,
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
