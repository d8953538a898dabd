"""The fleet at a glance: last seen, and per app the current image against the target."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tagwarden.auth.deps import Session
from tagwarden.devices import service
from tagwarden.web.render import WebRoute, page
from tagwarden.web.session import WebUser

# The fleet view of one digest (a recalled tag's badge links here): sha256 as registries write it.
DIGEST = r"^(sha256:[0-9a-f]{64})?$"
router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 100


@router.get("/devices")
async def devices_page(
    request: Request,
    session: Session,
    _: WebUser,
    architecture: Annotated[str, Query(max_length=32)] = "",
    digest: Annotated[str, Query(max_length=100, pattern=DIGEST)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows, total = await service.list_devices(
        session,
        architecture=architecture or None,
        digest=digest or None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    apps = await service.apps_of(session, [device.id for device in rows])
    return page(
        request,
        "devices.html",
        {
            "rows": rows,
            "apps": apps,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "architecture": architecture,
            "digest": digest,
        },
    )
