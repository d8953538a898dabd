"""The monitor's status (seed 001) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tagwarden.audit import service as audit
from tagwarden.auth.deps import Session
from tagwarden.catalogue import service as catalogue
from tagwarden.monitor.deps import Monitor
from tagwarden.web.render import WebRoute, page, redirect
from tagwarden.web.session import PostingUser, WebUser, need

router = APIRouter(route_class=WebRoute, include_in_schema=False)
AUDIT_PAGE = 50


@router.get("/monitor")
async def monitor_page(
    request: Request, session: Session, user: WebUser, monitor: Monitor
) -> HTMLResponse:
    watched, total = await catalogue.list_images(session, watched=True, limit=500)
    return page(
        request,
        "monitor.html",
        {
            "status": monitor.status(),
            # The last scan itself, with its per-image results (the status's "lastRun" is the
            # seed's camelCase summary, without them).
            "last": monitor.last_run,
            "watched": watched,
            "watched_total": total,
            "can_trigger": user.has("approver"),
        },
    )


@router.post("/monitor/trigger")
async def trigger(request: Request, user: PostingUser, monitor: Monitor) -> RedirectResponse:
    need(user, "approver")
    summary = await monitor.run_once(force=True)
    return redirect(
        request,
        "/monitor",
        f"Checked {summary.images_checked} images: {summary.requests_created} approval requests "
        f"created, {summary.errors} errors",
        "error" if summary.errors else "ok",
    )


@router.get("/audit")
async def audit_page(
    request: Request,
    session: Session,
    _: WebUser,
    entity_type: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows, total = await audit.list_entries(
        session,
        entity_type=entity_type or None,
        action=action or None,
        actor=actor or None,
        limit=AUDIT_PAGE,
        offset=offset,
    )
    return page(
        request,
        "audit.html",
        {
            "rows": rows,
            "total": total,
            "offset": offset,
            "page_size": AUDIT_PAGE,
            "filters": {"entity_type": entity_type, "action": action, "actor": actor},
        },
    )
