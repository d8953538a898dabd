"""Device routes: management (API tokens) and the device's own state (device key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from tagwarden.auth.deps import Admin, Now, Session, Viewer
from tagwarden.devices import service
from tagwarden.devices.auth import POLL_OPENAPI, DeviceKey, counting_failures, key_from_header
from tagwarden.devices.deps import Seen, poll_parts
from tagwarden.devices.schemas import (
    LABEL_FILTER_PATTERN,
    DeviceCreate,
    DeviceCreated,
    DeviceOut,
    DeviceUpdate,
    ReportOut,
    StateReport,
    parse_labels,
)
from tagwarden.errors import error_responses
from tagwarden.inputs import TextQuery
from tagwarden.pagination import Page, Paging

router = APIRouter(prefix="/api/v1", tags=["devices"])


@router.post("/devices", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def register(body: DeviceCreate, session: Session, who: Admin) -> DeviceCreated:
    device, key = await service.register(session, body, who)
    return DeviceCreated(**DeviceOut.of(device).model_dump(), device_key=key)


@router.get("/devices")
async def list_devices(
    session: Session,
    _: Viewer,
    paging: Paging,
    architecture: TextQuery = None,
    label: Annotated[
        list[str] | None,
        # parse_labels's rule in the document too (its message stays the one people read).
        Query(
            description="key=value; repeat to AND",
            json_schema_extra={"items": {"type": "string", "pattern": LABEL_FILTER_PATTERN}},
        ),
    ] = None,
    digest: Annotated[
        str | None,
        Query(
            description="only devices running or targeted with this digest (sha256:…)",
            pattern=r"^sha256:[0-9a-f]{64}$",
        ),
    ] = None,
) -> Page[DeviceOut]:
    labels = parse_labels(label or [], what="label filter")
    rows, total = await service.list_devices(
        session,
        architecture=architecture,
        labels=labels,
        digest=digest,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[DeviceOut.of(d) for d in rows], total=total, **paging.model_dump())


@router.get("/devices/{uuid}")
async def get_device(uuid: str, session: Session, _: Viewer) -> DeviceOut:
    device = await service.get_device(session, uuid)
    return DeviceOut.of(device, await service.device_apps(session, device.id))


@router.patch("/devices/{uuid}")
async def update_device(uuid: str, body: DeviceUpdate, session: Session, who: Admin) -> DeviceOut:
    device = await service.update_device(session, uuid, body, who)
    return DeviceOut.of(device, await service.device_apps(session, device.id))


@router.delete("/devices/{uuid}")
async def delete_device(uuid: str, session: Session, who: Admin) -> DeviceOut:
    return DeviceOut.of(await service.delete_device(session, uuid, who))


@router.get(
    "/device/{uuid}/state",
    responses={
        200: {"description": "the target state"},
        304: {"description": "unchanged"},
        # What the DeviceKey dependency would have derived (tagwarden.openapi).
        **error_responses(401, 403, 429),
    },
    openapi_extra=POLL_OPENAPI,
)
async def device_state(uuid: str, request: Request) -> Response:
    # An unchanged poll the device index can answer never gets here (devices/fastpath.py):
    # this route says everything else. The key, the ETag and the app's parts are read here
    # rather than through dependencies (devices/auth.py says why); the document still shows
    # the key and the header.
    key = key_from_header(request.headers.get("authorization"))
    if_none_match = request.headers.get("if-none-match")
    parts = poll_parts(request)
    settings = parts.settings
    with counting_failures(request):  # only a wrong key is counted: the hot path is as it was
        polled = await service.read_state(
            parts.engine,
            uuid,
            key,
            if_none_match=if_none_match,
            poll_interval=settings.device_poll_interval_seconds,
            active_poll_interval=settings.device_active_poll_interval_seconds,
            device_index=parts.index,
        )
    parts.presence.seen(polled.device_id)
    headers = {"ETag": polled.etag, "X-Poll-Interval": str(polled.poll_interval)}
    if polled.body is None:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(polled.body, media_type="application/json", headers=headers)


@router.patch("/device/{uuid}/state")
async def report_state(
    uuid: str,
    key: DeviceKey,
    body: StateReport,
    session: Session,
    request: Request,
    now: Now,
    presence: Seen,
) -> ReportOut:
    with counting_failures(request):
        device = await service.authenticate_device(session, uuid, key)
    accepted = await service.record_report(session, device, body, now=now)
    presence.seen(device.id)
    return ReportOut(accepted=accepted)
