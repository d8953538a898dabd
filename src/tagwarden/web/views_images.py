"""Images and their tags: the catalogue, per-image settings, monitoring, tag flags."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError

from tagwarden.approvals import service as approvals
from tagwarden.auth.deps import AppSettings, Session
from tagwarden.catalogue import service
from tagwarden.catalogue.models import ImageTag
from tagwarden.catalogue.schemas import ImageCreate, ImageUpdate
from tagwarden.catalogue.states import ImageStatus
from tagwarden.errors import InvalidInput
from tagwarden.monitor import service as monitor_service
from tagwarden.monitor.deps import Monitor
from tagwarden.web.render import WebRoute, page, redirect
from tagwarden.web.session import PostingUser, WebUser, need

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 100
M = TypeVar("M", bound=BaseModel)


def _checked(model: type[M], **values: object) -> M:
    """The API's own schema validates the form, so both refuse the same input the same way."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}" if field else str(first["msg"])) from exc


def _blank_to_none(value: str) -> str | None:
    return value.strip() or None


@router.get("/images")
async def images(
    request: Request,
    session: Session,
    user: WebUser,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows, total = await service.list_images(session, limit=PAGE_SIZE, offset=offset)
    return page(
        request,
        "images.html",
        {
            "rows": rows,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "is_admin": user.has("admin"),
            "can_check": user.has("approver"),
        },
    )


@router.post("/images")
async def add_image(
    request: Request,
    session: Session,
    user: PostingUser,
    settings: AppSettings,
    image_name: Annotated[str, Form(max_length=255)],
    namespace: Annotated[str, Form(max_length=255)] = "library",
    registry: Annotated[str, Form(max_length=255)] = "docker.io",
    category: Annotated[str, Form(max_length=100)] = "",
    watch_for_updates: Annotated[bool, Form()] = False,
) -> RedirectResponse:
    data = _checked(
        ImageCreate,
        image_name=image_name.strip(),
        namespace=namespace.strip() or "library",
        registry=registry.strip() or "docker.io",
        category=_blank_to_none(category),
        watch_for_updates=watch_for_updates,
    )
    image = await approvals.add_image(session, data, user, settings)
    note = (
        ""
        if image.approval_status == ImageStatus.APPROVED
        else " (waiting for an admin's approval)"
    )
    return redirect(request, f"/images/{image.id}", f"Added {image.display_name}{note}")


def _group_tags(rows: list[ImageTag]) -> list[dict[str, object]]:
    """One line per tag with its architectures; the rows come newest first."""
    grouped: dict[str, dict[str, object]] = {}
    for row in rows:
        entry = grouped.setdefault(
            row.tag,
            {
                "tag": row.tag,
                "digest": row.digest,
                "last_updated": row.last_updated,
                "is_recommended": row.is_recommended,
                "is_deprecated": row.is_deprecated,
                "is_recalled": row.is_recalled,
                "recall_reason": row.recall_reason,
                "recalled_at": row.recalled_at,
                "architectures": [],
                "source": row.metadata_.get("source"),
            },
        )
        archs = entry["architectures"]
        assert isinstance(archs, list)
        archs.append(row.architecture)
    return list(grouped.values())


@router.get("/images/{image_id}")
async def image_detail(
    request: Request, image_id: int, session: Session, user: WebUser
) -> HTMLResponse:
    image = await service.get_image(session, image_id)
    tags = await service.list_tags(session, image_id)
    return page(
        request,
        "image.html",
        {
            "image": image,
            "tags": _group_tags(list(tags)),
            "is_admin": user.has("admin"),
            "can_flag": user.has("approver"),
        },
    )


@router.post("/images/{image_id}/settings")
async def update_settings(
    request: Request,
    image_id: int,
    session: Session,
    user: PostingUser,
    check_interval_minutes: Annotated[str, Form(max_length=10)] = "",
    tag_include: Annotated[str, Form(max_length=500)] = "",
    tag_exclude: Annotated[str, Form(max_length=500)] = "",
    tag_policy: Annotated[Literal["latest", "all"], Form()] = "latest",
    category: Annotated[str, Form(max_length=100)] = "",
    description: Annotated[str, Form(max_length=5000)] = "",
) -> RedirectResponse:
    need(user, "admin")
    interval = check_interval_minutes.strip()
    if interval and not interval.isdigit():
        raise InvalidInput("check interval must be a whole number of minutes (or empty)")
    patch = _checked(
        ImageUpdate,
        check_interval_minutes=int(interval) if interval else None,
        tag_include=_blank_to_none(tag_include),
        tag_exclude=_blank_to_none(tag_exclude),
        tag_policy=tag_policy,
        category=_blank_to_none(category),
        description=_blank_to_none(description),
    )
    image = await service.update_image(session, image_id, patch, user)
    return redirect(request, f"/images/{image_id}", f"Saved the settings of {image.display_name}")


@router.post("/images/{image_id}/monitoring")
async def set_monitoring(
    request: Request,
    image_id: int,
    session: Session,
    user: PostingUser,
    watch: Annotated[Literal["on", "off"], Form()],
) -> RedirectResponse:
    need(user, "admin")
    image = await service.set_monitoring(session, image_id, watch == "on", user)
    state = "enabled" if watch == "on" else "disabled"
    return redirect(request, f"/images/{image_id}", f"Monitoring {state} for {image.display_name}")


@router.post("/images/{image_id}/check")
async def check_now(
    request: Request, image_id: int, session: Session, user: PostingUser, monitor: Monitor
) -> RedirectResponse:
    need(user, "approver")
    image = await monitor_service.checkable_image(session, image_id)
    result = await monitor.check(image)
    if result.error:
        return redirect(
            request,
            f"/images/{image_id}",
            f"Check of {image.display_name} failed: {result.error}",
            "error",
        )
    created = ", ".join(result.requests_created) or "none"
    return redirect(
        request,
        f"/images/{image_id}",
        f"Checked {image.display_name}: {result.tags_seen} tags seen, "
        f"{result.new_tags} new; approval requests created: {created}",
    )


@router.post("/images/{image_id}/tags/flag")
async def flag_tag(
    request: Request,
    image_id: int,
    session: Session,
    user: PostingUser,
    tag: Annotated[str, Form(min_length=1, max_length=128)],
    flag: Annotated[Literal["recommended", "deprecated"], Form()],
    value: Annotated[bool, Form()],
) -> RedirectResponse:
    need(user, "approver")
    await service.set_tag_flag(session, image_id, tag, flag=f"is_{flag}", value=value, actor=user)
    verb = f"marked {flag}" if value else f"no longer {flag}"
    return redirect(request, f"/images/{image_id}#tags", f"Tag {tag} {verb}")
