"""App definition use cases: put (create or replace), show, list, delete.

Each change is audited and bumps the state version of every device with a target for the app,
in the same transaction: their next conditional poll is a 200 carrying the new config.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.apps.schemas import AppPut, split_volume
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue.service import get_image, lock_images
from tagwarden.db import flush_unique
from tagwarden.devices import service as devices
from tagwarden.devices.models import App, DeviceApp
from tagwarden.errors import Conflict, InvalidInput, NotFound


def within(path: str, roots: Sequence[str]) -> bool:
    """Whether ``path`` (already clean: schemas.is_clean_absolute) is a root or below one.
    Compared by whole components, so /srv/data-other is not inside /srv/data."""
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def check_binds(config: dict[str, Any], roots: Sequence[str]) -> None:
    """Refuse a bind mount of a host path outside the server's TAGWARDEN_APP_BIND_ROOTS."""
    for spec in config.get("volumes", []):
        source, _, _ = split_volume(spec)
        if not source.startswith("/"):
            continue  # a named volume: the engine's own storage, not a host path
        if not roots:
            raise InvalidInput(
                f"config.volumes: bind mount {spec!r} refused: this server allows no bind "
                "mounts (TAGWARDEN_APP_BIND_ROOTS is empty); use a named volume"
            )
        if not within(posixpath.normpath(source), roots):
            raise InvalidInput(
                f"config.volumes: bind mount {spec!r} refused: {source} is outside the "
                f"allowed roots ({', '.join(roots)})"
            )


async def get_app(session: AsyncSession, name: str) -> App:
    app = await session.scalar(select(App).where(App.name == name))
    if app is None:
        raise NotFound(f"app {name} not found")
    return app


async def list_apps(session: AsyncSession) -> Sequence[App]:
    return (await session.scalars(select(App).order_by(App.name))).all()


async def _targeted(session: AsyncSession, name: str) -> list[tuple[int, int | None]]:
    """(device id, target image id) of every device with a target for app ``name``."""
    rows = await session.execute(
        select(DeviceApp.device_id, DeviceApp.image_id).where(
            DeviceApp.app_name == name, DeviceApp.digest.is_not(None)
        )
    )
    return [(int(d), i) for d, i in rows.all()]


# What an audit entry shows of an app definition.
APP_FIELDS = ("name", "image_id", "config")


async def put_app(
    session: AsyncSession, name: str, data: AppPut, actor: Principal, *, bind_roots: Sequence[str]
) -> tuple[App, bool]:
    """Create or replace app ``name``; True when it was created."""
    config = data.config.stored()
    check_binds(config, bind_roots)
    image = await get_image(session, data.image_id)
    # The images whose devices this change concerns (the app's current one and the new), locked
    # before the targets are read: a rollout assigning them waits, or has committed.
    current = await session.scalar(select(App.image_id).where(App.name == name))
    await lock_images(session, [image.id, current])
    app = await session.scalar(
        select(App)
        .where(App.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if app is not None and app.image_id not in (image.id, current):
        await lock_images(session, [app.image_id])  # changed meanwhile by another put
    if app is not None and app.image_id == image.id and app.config == config:
        return app, False  # nothing changed: no audit entry, no poll answered with a 200
    targeted = await _targeted(session, name)
    other = sorted({i for _, i in targeted if i is not None and i != image.id})
    if other:
        # The image an app runs changes by a rollout (approved, pinned by digest), never by
        # editing its definition: devices would get another image's config.
        raise Conflict(
            f"devices have targets for app {name} from image(s) {', '.join(map(str, other))}, "
            f"not image {image.id}; roll the app to the new image after deleting its definition",
            code="app_image_mismatch",
        )
    before = None if app is None else audit.snapshot(app, APP_FIELDS)
    created = app is None
    if app is None:
        app = App(name=name, created_by=actor.identity)
        session.add(app)
    app.image_id, app.config, app.updated_by = image.id, config, actor.identity
    await flush_unique(
        session, Conflict(f"app {name} was created concurrently; retry", code="app_exists")
    )
    await devices.bump(session, [d for d, _ in targeted])
    audit.record(
        session,
        actor=actor.identity,
        action="app.put",
        entity_type="app",
        entity_id=name,
        before=before,
        after=audit.snapshot(app, APP_FIELDS),
    )
    return app, created


async def delete_app(session: AsyncSession, name: str, actor: Principal) -> App:
    """Remove the definition: devices keep their targets and run the image as it is."""
    app = await get_app(session, name)
    await lock_images(session, [app.image_id])  # as put_app: before the targets are read
    before = audit.snapshot(app, APP_FIELDS)
    await session.delete(app)
    await devices.bump(session, [d for d, _ in await _targeted(session, name)])
    audit.record(
        session,
        actor=actor.identity,
        action="app.deleted",
        entity_type="app",
        entity_id=name,
        before=before,
    )
    return app


async def check_rollout_image(session: AsyncSession, app_name: str, image_id: int) -> None:
    """A rollout may put only the app's own image under an app definition's config."""
    app = await session.scalar(select(App).where(App.name == app_name))
    if app is not None and app.image_id != image_id:
        raise Conflict(
            f"app {app_name} is defined for image {app.image_id}, not image {image_id}: "
            "name another app, or change the app's definition first",
            code="app_image_mismatch",
        )
