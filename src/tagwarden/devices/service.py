"""Device use cases: registration and keys, the target state a device polls, its reports."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal, hash_token
from tagwarden.db import flush_unique, utcnow
from tagwarden.devices import index
from tagwarden.devices.index import DeviceIndex, key_digest
from tagwarden.devices.models import App, Device, DeviceApp, DeviceDeletion
from tagwarden.devices.schemas import DeviceCreate, DeviceUpdate, StateReport
from tagwarden.devices.states import AppStatus
from tagwarden.errors import Conflict, Forbidden, NotFound, Unauthorized
from tagwarden.references import digest_of

DEVICE_KEY_PREFIX = "twd_"
DEVICE_FIELDS = ("uuid", "name", "architecture", "labels")
TOMBSTONE_KEPT = timedelta(days=1)
Q = TypeVar("Q", bound=Select[Any])  # a query of devices


async def register(
    session: AsyncSession, data: DeviceCreate, actor: Principal
) -> tuple[Device, str]:
    """Register a device; its key is returned here once and only its hash is kept."""
    raw = DEVICE_KEY_PREFIX + secrets.token_urlsafe(32)
    device = Device(
        uuid=data.uuid,
        name=data.name or data.uuid,
        architecture=data.architecture,
        labels=data.labels,
        key_hash=hash_token(raw),
        key_prefix=raw[:10],
    )
    session.add(device)
    await flush_unique(
        session, Conflict(f"device {data.uuid} is already registered", code="device_exists")
    )
    audit.record(
        session,
        actor=actor.identity,
        action="device.registered",
        entity_type="device",
        entity_id=device.uuid,
        after=audit.snapshot(device, DEVICE_FIELDS),
    )
    return device, raw


async def get_device(session: AsyncSession, uuid: str) -> Device:
    device = await session.scalar(select(Device).where(Device.uuid == uuid))
    if device is None:
        raise NotFound(f"device {uuid} not found")
    return device


async def device_apps(session: AsyncSession, device_id: int) -> list[DeviceApp]:
    return (await apps_of(session, [device_id])).get(device_id, [])


async def apps_of(session: AsyncSession, device_ids: Sequence[int]) -> dict[int, list[DeviceApp]]:
    """The apps of many devices in one query (a page of the fleet), by device id."""
    out: dict[int, list[DeviceApp]] = {i: [] for i in device_ids}
    if device_ids:
        rows = await session.scalars(
            select(DeviceApp)
            .where(DeviceApp.device_id.in_(list(device_ids)))
            .order_by(DeviceApp.device_id, DeviceApp.app_name)
        )
        for app in rows.all():
            out[app.device_id].append(app)
    return out


def with_labels(query: Q, labels: Mapping[str, str]) -> Q:
    """Only devices whose labels include every ``key=value``, matched by the database
    (``JSON_EXTRACT`` on SQLite, ``->>`` on PostgreSQL) rather than by reading the fleet."""
    return query.where(*(Device.labels[key].as_string() == value for key, value in labels.items()))


async def list_devices(
    session: AsyncSession,
    *,
    architecture: str | None = None,
    labels: dict[str, str] | None = None,
    digest: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Device], int]:
    query = with_labels(select(Device), labels or {})
    if architecture:
        query = query.where(Device.architecture == architecture)
    if digest:
        # Running it (the digest it reports) or targeted with it (its target state).
        apps = select(DeviceApp.device_id).where(
            or_(DeviceApp.digest == digest, DeviceApp.current_digest == digest)
        )
        query = query.where(Device.id.in_(apps))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.scalars(query.order_by(Device.id).limit(limit).offset(offset))).all()
    return rows, int(total or 0)


async def update_device(
    session: AsyncSession, uuid: str, data: DeviceUpdate, actor: Principal
) -> Device:
    """Rename or relabel a device (a continuous rollout whose selector it now matches takes it
    on its next step); audited with the values before and after."""
    device = await get_device(session, uuid)
    before = audit.snapshot(device, DEVICE_FIELDS)
    if data.name is not None:
        device.name = data.name
    if data.labels is not None:
        device.labels = data.labels
    after = audit.snapshot(device, DEVICE_FIELDS)
    if after != before:
        audit.record(
            session,
            actor=actor.identity,
            action="device.updated",
            entity_type="device",
            entity_id=uuid,
            before=before,
            after=after,
        )
    return device


async def delete_device(session: AsyncSession, uuid: str, actor: Principal) -> Device:
    device = await get_device(session, uuid)
    before = audit.snapshot(device, DEVICE_FIELDS)
    await session.delete(device)
    # Every replica's device index must stop accepting this key: this one at commit, the others
    # when their next refresh reads the tombstone. Tombstones older than any refresh window are
    # of no use to anyone (a replica that was away that long reloads in full).
    now = utcnow()
    session.add(DeviceDeletion(device_id=device.id, uuid=uuid, deleted_at=now))
    await session.execute(
        delete(DeviceDeletion).where(DeviceDeletion.deleted_at < now - TOMBSTONE_KEPT)
    )
    index.note_changed(session, [device.id])
    audit.record(
        session,
        actor=actor.identity,
        action="device.deleted",
        entity_type="device",
        entity_id=uuid,
        before=before,
    )
    return device


# -- the device's own API ---------------------------------------------------------------------

_STATE_ROW = select(Device.id, Device.key_hash, Device.state_version, Device.fast_poll)
# The app's definition, when it has one, gives the container config; an app without one runs
# its image as it is (config {}). A change to a definition bumps these devices' state version.
_APPS = (
    select(
        DeviceApp.app_name,
        DeviceApp.image,
        DeviceApp.tag,
        DeviceApp.digest,
        App.config,
        DeviceApp.prefetch,
    )
    # The config goes only with the app's own image: a target of another image (a rollback to
    # before the definition, say) runs that image as it is.
    .outerjoin(App, and_(App.name == DeviceApp.app_name, App.image_id == DeviceApp.image_id))
    .where(DeviceApp.digest.is_not(None))
)


@dataclass(frozen=True)
class Polled:
    device_id: int
    etag: str
    poll_interval: int
    body: bytes | None  # None: the device already has this state (304)


def _etag(version: int, interval: int) -> str:
    return f'"{version}.{interval}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in candidates or "*" in candidates


def unchanged_from_index(
    device_index: DeviceIndex,
    uuid: str,
    digest: bytes,
    if_none_match: str | None,
    poll_interval: int,
    active_poll_interval: int,
) -> Polled | None:
    """The unchanged poll (304) the device index answers on its own: the device is known, the
    key is its own and the ETag still matches. None: the database has to say."""
    entry = device_index.get(uuid)
    if entry is None or not secrets.compare_digest(entry.key_digest, digest):
        return None
    interval = active_poll_interval if entry.fast_poll else poll_interval
    etag = _etag(entry.version, interval)
    if not _matches(if_none_match, etag):
        return None
    return Polled(entry.device_id, etag, interval, None)


async def _refuse(engine: AsyncEngine, key_hash: str) -> None:
    """401 for an unknown key; 403 for a real key used on another device's state."""
    async with engine.connect() as conn:
        owner = await conn.scalar(select(Device.id).where(Device.key_hash == key_hash))
    if owner is None:
        raise Unauthorized("invalid device key")
    raise Forbidden("this device key belongs to another device")


async def read_state(
    engine: AsyncEngine,
    uuid: str,
    key: str,
    *,
    if_none_match: str | None,
    poll_interval: int,
    active_poll_interval: int,
    device_index: DeviceIndex | None = None,
) -> Polled:
    """The poll: unchanged and known to the device index, no database at all; otherwise one
    indexed row read, and the body is built only when the ETag has changed."""
    digest = key_digest(key)
    if device_index is not None:
        known = unchanged_from_index(
            device_index, uuid, digest, if_none_match, poll_interval, active_poll_interval
        )
        if known is not None:
            return known
    # Anything else (a changed state, a key the index does not know) is the database's to say.
    key_hash = digest.hex()
    async with engine.connect() as conn:
        row = (await conn.execute(_STATE_ROW.where(Device.uuid == uuid))).first()
        if row is None or not secrets.compare_digest(row.key_hash, key_hash):
            await conn.rollback()
            await _refuse(engine, key_hash)
        assert row is not None  # _refuse always raises
        interval = active_poll_interval if row.fast_poll else poll_interval
        etag = _etag(row.state_version, interval)
        if _matches(if_none_match, etag):
            return Polled(row.id, etag, interval, None)
        apps = (await conn.execute(_APPS.where(DeviceApp.device_id == row.id))).all()
    body = {
        "uuid": uuid,
        "apps": {
            a.app_name: {
                "image": f"{a.image}:{a.tag}@{a.digest}" if a.tag else f"{a.image}@{a.digest}",
                "image_name": a.image,
                "tag": a.tag,
                "digest": a.digest,
                "config": a.config or {},
            }
            # Only while the switch waits for a maintenance window: pull it, keep what runs.
            | ({"prefetch": True} if a.prefetch else {})
            for a in apps
        },
        "poll_interval": interval,
        "version": row.state_version,
    }
    return Polled(row.id, etag, interval, json.dumps(body, separators=(",", ":")).encode())


async def authenticate_device(session: AsyncSession, uuid: str, key: str) -> Device:
    device = await session.scalar(select(Device).where(Device.uuid == uuid))
    key_hash = hash_token(key)
    if device is None or not secrets.compare_digest(device.key_hash, key_hash):
        owner = await session.scalar(select(Device.id).where(Device.key_hash == key_hash))
        if owner is None:
            raise Unauthorized("invalid device key")
        raise Forbidden("this device key belongs to another device")
    return device


async def record_report(
    session: AsyncSession, device: Device, report: StateReport, *, now: datetime
) -> list[str]:
    """Keep what the device says each app runs; the rollout monitor judges it on its tick."""
    existing = {a.app_name: a for a in await device_apps(session, device.id)}
    for name, app in report.apps.items():
        row = existing.get(name)
        if row is None:
            row = DeviceApp(device_id=device.id, app_name=name)
            session.add(row)
        row.current_image = app.image
        row.current_digest = app.digest or digest_of(app.image)
        row.status = app.status
        row.health = app.health
        row.reason = app.reason if app.status == AppStatus.FAILED else None
        row.message = app.message
        row.reported_at = now
    return sorted(report.apps)


def assign_target(
    session: AsyncSession,
    app: DeviceApp | None,
    device_id: int,
    app_name: str,
    *,
    image_id: int | None,
    image: str | None,
    tag: str | None,
    digest: str | None,
    rollout_id: int | None,
    now: datetime,
    prefetch: bool = False,
) -> DeviceApp:
    """Point one app of one device at an image (or at nothing). ``app`` is its row as the
    caller read it with the others of its batch (None: the device has no such app yet); the
    caller bumps the devices' state version once for all of them (:func:`bump`)."""
    if app is None:
        app = DeviceApp(device_id=device_id, app_name=app_name)
        session.add(app)
    app.image_id, app.image, app.tag, app.digest = image_id, image, tag, digest
    app.rollout_id = rollout_id
    app.target_updated_at = now
    app.prefetch = prefetch
    return app


async def bump(
    session: AsyncSession, device_ids: Sequence[int], *, fast: bool | None = None
) -> None:
    """A new state version: the next conditional poll of these devices gets a 200."""
    if not device_ids:
        return
    # state_changed_at is the real wall clock even when a test drives the rollout's clock:
    # replicas' indexes compare it with their own wall clocks.
    values: dict[str, object] = {
        "state_version": Device.state_version + 1,
        "state_changed_at": utcnow(),
    }
    if fast is not None:
        values["fast_poll"] = fast
    index.note_changed(session, device_ids)
    await session.execute(
        update(Device)
        .where(Device.id.in_(list(device_ids)))
        .values(values)
        .execution_options(synchronize_session=False)
    )
