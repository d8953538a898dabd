"""Catalogue use cases: images (which repositories are allowed) and their deployable tags."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden import references
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.schemas import ImageCreate, ImageUpdate
from tagwarden.catalogue.states import ImageAction, ImageStatus, after, allows
from tagwarden.config import Settings
from tagwarden.db import utcnow
from tagwarden.errors import Conflict, InvalidInput, NotFound
from tagwarden.registry import allowlist

IMAGE_FIELDS = (
    "image_name",
    "namespace",
    "registry_host",
    "approval_status",
    "category",
    "description",
    "watch_for_updates",
    "check_interval_minutes",
    "tag_include",
    "tag_exclude",
    "tag_policy",
    "watch_tags",
)


async def get_image(session: AsyncSession, image_id: int) -> Image:
    image = await session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    return image


async def lock_images(session: AsyncSession, image_ids: Collection[int | None]) -> None:
    """Take these images' row locks, in id order, before reading or changing which devices
    run them or with what config.

    An app definition's change bumps the devices it finds targeted; a rollout's assignment
    bumps the devices it targets. Unserialised, a device assigned after the definition's
    read and polled before its commit keeps the old config under a version nothing bumps
    again. Both take the lock of the image(s) concerned first, so one sees the other's
    commit. A no-op UPDATE, as ``rollouts.engine.lock`` does: a row lock on PostgreSQL, and
    the transaction's first write on SQLite (which ignores FOR UPDATE). ``updated_at`` is
    set to itself so that its onupdate does not fire.
    """
    for image_id in sorted({i for i in image_ids if i is not None}):
        await session.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(updated_at=Image.updated_at)
            .execution_options(synchronize_session=False)
        )


async def find_image(
    session: AsyncSession, registry: str, namespace: str, image_name: str
) -> Image | None:
    return await session.scalar(
        select(Image).where(
            Image.registry_host == registry,
            Image.namespace == namespace,
            Image.image_name == image_name,
        )
    )


async def add_image(
    session: AsyncSession, data: ImageCreate, actor: Principal, settings: Settings
) -> Image:
    """An admin admits the image at once; anyone else's stays pending, for the image-level
    request the caller makes (approvals.service.add_image).

    Only an allowed registry host is accepted: the host is where the server will
    send requests, so whoever may add an image must not be able to name any host at all.
    """
    error = references.repository_error(data.registry, data.namespace, data.image_name)
    if error:
        raise InvalidInput(error)
    if not allowlist.is_allowed(data.registry, settings):
        raise InvalidInput(allowlist.refusal(data.registry), code="registry_not_allowed")
    if await find_image(session, data.registry, data.namespace, data.image_name):
        raise Conflict(
            f"image {data.registry}/{data.namespace}/{data.image_name} is already in the catalogue",
            code="image_exists",
        )
    approved = actor.has("admin")
    if data.watch_for_updates and not approved:
        raise Conflict("only approved images can be monitored; an admin must approve it first")
    image = Image(
        image_name=data.image_name,
        namespace=data.namespace,
        registry_host=data.registry,
        approval_status=ImageStatus.APPROVED if approved else ImageStatus.PENDING,
        category=data.category,
        description=data.description,
        watch_for_updates=data.watch_for_updates,
        next_check_at=utcnow() if data.watch_for_updates else None,
        check_interval_minutes=data.check_interval_minutes,
        tag_include=data.tag_include,
        tag_exclude=data.tag_exclude,
        tag_policy=data.tag_policy,
        watch_tags=data.watch_tags,
    )
    session.add(image)
    await session.flush()
    audit.record(
        session,
        actor=actor.identity,
        action="image.created",
        entity_type="image",
        entity_id=image.id,
        after=audit.snapshot(image, IMAGE_FIELDS),
    )
    return image


async def change_status(
    session: AsyncSession, image: Image, action: ImageAction, *, actor: str, request_id: int
) -> None:
    """Admit or refuse a pending image, as its image-level request was decided."""
    if not allows(image.approval_status, action):
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; it can no longer be "
            f"{'admitted' if action is ImageAction.ADMIT else 'refused'}",
            code="image_not_pending",
        )
    before = {"approval_status": image.approval_status}
    image.approval_status = after(image.approval_status, action)
    if action is ImageAction.ADMIT:
        audit.record(
            session,
            actor=actor,
            action="image.approved",
            entity_type="image",
            entity_id=image.id,
            before=before,
            after={"approval_status": image.approval_status, "approval_request_id": request_id},
        )


async def images_by_id(session: AsyncSession, ids: Collection[int]) -> dict[int, Image]:
    """The images of ``ids``, by id, in one query (none for an empty set)."""
    if not ids:
        return {}
    return {i.id: i for i in await session.scalars(select(Image).where(Image.id.in_(ids)))}


async def list_images(
    session: AsyncSession,
    *,
    approval_status: str | None = None,
    watched: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Image], int]:
    query = select(Image)
    if approval_status:
        query = query.where(Image.approval_status == approval_status)
    if watched is not None:
        query = query.where(Image.watch_for_updates.is_(watched))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Image.id).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def update_image(
    session: AsyncSession, image_id: int, patch: ImageUpdate, actor: Principal
) -> Image:
    image = await get_image(session, image_id)
    changes: dict[str, Any] = patch.model_dump(exclude_unset=True)
    if not changes:
        return image
    before = audit.snapshot(image, changes)
    for name, value in changes.items():
        if name == "tag_policy" and value is None:
            raise InvalidInput("tag_policy must be 'latest' or 'all'")
        if name == "watch_tags" and value is None:
            raise InvalidInput("watch_tags must be a list of tags (an empty one clears it)")
        setattr(image, name, value)
    audit.record(
        session,
        actor=actor.identity,
        action="image.updated",
        entity_type="image",
        entity_id=image.id,
        before=before,
        after=audit.snapshot(image, changes),
    )
    return image


async def set_monitoring(
    session: AsyncSession, image_id: int, watch: bool, actor: Principal
) -> Image:
    image = await get_image(session, image_id)
    if watch and image.approval_status != ImageStatus.APPROVED:
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; only approved images can be "
            "monitored",
            code="image_not_approved",
        )
    before = audit.snapshot(image, ("watch_for_updates", "next_check_at"))
    image.watch_for_updates = watch
    # Seed 001: enabling monitoring schedules a check now; disabling forgets the schedule.
    image.next_check_at = utcnow() if watch else None
    audit.record(
        session,
        actor=actor.identity,
        action="image.monitoring_enabled" if watch else "image.monitoring_disabled",
        entity_type="image",
        entity_id=image.id,
        before=before,
        after=audit.snapshot(image, ("watch_for_updates", "next_check_at")),
    )
    return image


async def list_tags(
    session: AsyncSession, image_id: int, *, include_deprecated: bool = True
) -> Sequence[ImageTag]:
    await get_image(session, image_id)
    query = select(ImageTag).where(ImageTag.image_id == image_id)
    if not include_deprecated:
        query = query.where(ImageTag.is_deprecated.is_(False))
    rows = await session.scalars(
        query.order_by(ImageTag.last_updated.desc(), ImageTag.tag, ImageTag.architecture)
    )
    return rows.all()


async def deployable_tags(session: AsyncSession) -> list[tuple[Image, list[ImageTag]]]:
    """Approved images with their activated, non-deprecated tag rows (newest first), in one
    query: all a rollout may use. Images without such a tag are left out."""
    rows = await session.execute(
        select(Image, ImageTag)
        .join(ImageTag, ImageTag.image_id == Image.id)
        .where(Image.approval_status == ImageStatus.APPROVED, ImageTag.is_deprecated.is_(False))
        .order_by(Image.id, ImageTag.last_updated.desc(), ImageTag.tag, ImageTag.architecture)
    )
    grouped: dict[int, tuple[Image, list[ImageTag]]] = {}
    for image, tag in rows:
        grouped.setdefault(image.id, (image, []))[1].append(tag)
    return list(grouped.values())


async def set_tag_flag(
    session: AsyncSession,
    image_id: int,
    tag: str,
    *,
    flag: str,
    value: bool,
    actor: Principal,
) -> Sequence[ImageTag]:
    """Mark every architecture row of a tag recommended or deprecated."""
    if flag not in ("is_recommended", "is_deprecated"):
        raise InvalidInput(f"unknown tag flag {flag!r}")
    if error := references.tag_error(tag):  # the web form reaches here without the schema
        raise InvalidInput(error)
    image = await get_image(session, image_id)
    rows = (
        await session.scalars(
            select(ImageTag).where(ImageTag.image_id == image_id, ImageTag.tag == tag)
        )
    ).all()
    if not rows:
        raise NotFound(f"tag {image.display_name}:{tag} is not in image_tags (not activated)")
    before = {"tag": tag, flag.removeprefix("is_"): getattr(rows[0], flag)}
    await session.execute(
        update(ImageTag)
        .where(ImageTag.image_id == image_id, ImageTag.tag == tag)
        .values({flag: value})
        .execution_options(synchronize_session="fetch")
    )
    audit.record(
        session,
        actor=actor.identity,
        action=f"tag.{flag.removeprefix('is_')}" if value else f"tag.un{flag.removeprefix('is_')}",
        entity_type="image_tag",
        entity_id=f"{image_id}:{tag}",
        before=before,
        after={"tag": tag, flag.removeprefix("is_"): value},
    )
    for row in rows:
        await session.refresh(row)
    return rows
