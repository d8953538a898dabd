"""Catalogue routes: thin, each one service call and a schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tagwarden.auth.deps import Admin, Approver, Session, Viewer
from tagwarden.catalogue import service
from tagwarden.catalogue.schemas import (
    ImageOut,
    ImageTagOut,
    ImageUpdate,
    MonitoringOut,
    MonitoringUpdate,
    TagFlag,
    TagFlagOut,
)
from tagwarden.catalogue.states import StatusName
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.pagination import Page, Paging

router = APIRouter(prefix="/api/v1/images", tags=["images"])


@router.get("")
async def list_images(
    session: Session,
    _: Viewer,
    paging: Paging,
    approval_status: Annotated[StatusName | None, Query()] = None,
    watch_for_updates: bool | None = None,
) -> Page[ImageOut]:
    rows, total = await service.list_images(
        session,
        approval_status=approval_status,
        watched=watch_for_updates,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[ImageOut.of(r) for r in rows], total=total, **paging.model_dump())


@router.get("/{image_id}")
async def get_image(image_id: IdPath, session: Session, _: Viewer) -> ImageOut:
    return ImageOut.of(await service.get_image(session, image_id))


@router.patch("/{image_id}")
async def update_image(
    image_id: IdPath, body: ImageUpdate, session: Session, who: Admin
) -> ImageOut:
    return ImageOut.of(await service.update_image(session, image_id, body, who))


@router.put("/{image_id}/monitoring", responses=error_responses(409))
async def set_monitoring(
    image_id: IdPath, body: MonitoringUpdate, session: Session, who: Admin
) -> MonitoringOut:
    image = await service.set_monitoring(session, image_id, body.watch_for_updates, who)
    state = "enabled" if body.watch_for_updates else "disabled"
    return MonitoringOut(message=f"Monitoring {state} successfully", image=ImageOut.of(image))


@router.get("/{image_id}/tags")
async def list_tags(
    image_id: IdPath, session: Session, _: Viewer, include_deprecated: bool = True
) -> list[ImageTagOut]:
    rows = await service.list_tags(session, image_id, include_deprecated=include_deprecated)
    return [ImageTagOut.of(r) for r in rows]


@router.post("/{image_id}/tags/recommended")
async def mark_recommended(
    image_id: IdPath, body: TagFlag, session: Session, who: Approver
) -> TagFlagOut:
    rows = await service.set_tag_flag(
        session, image_id, body.tag, flag="is_recommended", value=body.value, actor=who
    )
    verb = "marked as recommended" if body.value else "no longer recommended"
    return TagFlagOut(
        message=f"Tag {body.tag} {verb}", image_tags=[ImageTagOut.of(r) for r in rows]
    )


@router.post("/{image_id}/tags/deprecated")
async def mark_deprecated(
    image_id: IdPath, body: TagFlag, session: Session, who: Approver
) -> TagFlagOut:
    rows = await service.set_tag_flag(
        session, image_id, body.tag, flag="is_deprecated", value=body.value, actor=who
    )
    verb = "marked as deprecated" if body.value else "no longer deprecated"
    return TagFlagOut(
        message=f"Tag {body.tag} {verb}", image_tags=[ImageTagOut.of(r) for r in rows]
    )
