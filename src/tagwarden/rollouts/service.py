"""Rollout use cases: create (or dry-run), list and show; the operator's actions are in
``actions``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.apps.service import check_rollout_image
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.service import find_image, get_image
from tagwarden.catalogue.states import ImageStatus
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.devices.service import with_labels
from tagwarden.devices.states import FailureReason
from tagwarden.errors import Conflict, DomainError, InvalidInput, NotFound
from tagwarden.evidence import service as evidence
from tagwarden.evidence import sizes
from tagwarden.evidence.sizing import image_size_evidence
from tagwarden.platforms import normalise_architecture
from tagwarden.references import split_reference
from tagwarden.rollouts import engine, planner
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.schemas import RolloutCreate
from tagwarden.rollouts.states import (
    DeviceState,
    RolloutStatus,
)


@dataclass(frozen=True)
class Prepared:
    image: Image
    digest: str
    app_name: str
    plan: planner.Plan
    devices: dict[str, Device]
    # Targeted device → bytes it downloads (None: the target's size is not known).
    downloads: dict[str, int | None] = field(default_factory=dict)

    @property
    def download_total(self) -> int | None:
        """The fleet's download, or None when any targeted device's is not known."""
        values = list(self.downloads.values())
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)


async def _image(session: AsyncSession, data: RolloutCreate) -> Image:
    if data.image_id is not None:
        return await get_image(session, data.image_id)
    assert data.image is not None
    image = await find_image(session, *split_reference(data.image))
    if image is None:
        raise NotFound(f"image {data.image} is not in the catalogue")
    return image


async def target_of(session: AsyncSession, data: RolloutCreate) -> tuple[int, str] | None:
    """(image id, digest) the rollout would move, or None where ``prepare`` will refuse it."""
    try:
        image = await _image(session, data)
        variants = await _variants(session, image, data.tag)
    except DomainError:
        return None
    return image.id, next(iter(variants.values())).digest


async def _variants(session: AsyncSession, image: Image, tag: str) -> dict[str, planner.Variant]:
    """The tag's deployable rows; refuse a tag that is not activated or is deprecated."""
    rows = (
        await session.scalars(
            select(ImageTag).where(ImageTag.image_id == image.id, ImageTag.tag == tag)
        )
    ).all()
    ref = f"{image.display_name}:{tag}"
    if not rows:
        raise Conflict(
            f"tag {ref} is not approved: it is not in image_tags (approve and activate it first)",
            code="tag_not_approved",
        )
    live = [r for r in rows if not r.is_deprecated]
    if not live:
        raise Conflict(
            f"tag {ref} is not approved for rollout: it is deprecated", code="tag_not_approved"
        )
    recalled = [r for r in live if r.is_recalled]
    if recalled:
        raise Conflict(
            f"tag {ref} is recalled: {recalled[0].recall_reason or 'a blocking finding'}",
            code="tag_recalled",
        )
    if image.approval_status != ImageStatus.APPROVED:
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}", code="tag_not_approved"
        )
    if not all(r.digest for r in live):
        raise Conflict(f"tag {ref} has no digest to pin devices to", code="tag_without_digest")
    return await engine.variants(session, image.id, tag)


async def _devices(session: AsyncSession, data: RolloutCreate) -> list[Device]:
    if data.devices is not None:
        found = {
            d.uuid: d
            for d in await session.scalars(select(Device).where(Device.uuid.in_(data.devices)))
        }
        missing = [u for u in data.devices if u not in found]
        if missing:
            raise InvalidInput(f"unknown devices: {', '.join(missing[:20])}")
        return [found[u] for u in dict.fromkeys(data.devices)]
    query = with_labels(select(Device), data.selector or {})
    return list(await session.scalars(query.order_by(Device.id)))


async def prepare(
    session: AsyncSession, data: RolloutCreate, *, now: datetime, poll_interval: int
) -> Prepared:
    """Everything a rollout and its dry run share: validation, the devices and the plan."""
    image = await _image(session, data)
    variants = await _variants(session, image, data.tag)
    app_name = data.app or image.image_name
    await check_rollout_image(session, app_name, image.id)
    devices = await _devices(session, data)
    apps: dict[int, DeviceApp] = {}
    if devices:
        rows = await session.scalars(
            select(DeviceApp).where(
                DeviceApp.app_name == app_name,
                DeviceApp.device_id.in_([d.id for d in devices]),
            )
        )
        apps = {a.device_id: a for a in rows}
    candidates = [
        planner.Candidate(
            uuid=d.uuid,
            architecture=d.architecture,
            registered_at=d.created_at,
            last_seen_at=d.last_seen_at,
            target_digest=apps[d.id].digest if d.id in apps else None,
            reported_digest=apps[d.id].current_digest if d.id in apps else None,
            reported_status=apps[d.id].status if d.id in apps else None,
        )
        for d in devices
    ]
    plan = planner.plan(
        data.strategy,
        data.options.to_plan(),
        candidates,
        variants,
        now=now,
        poll_interval_seconds=poll_interval,
    )
    by_uuid = {d.uuid: d for d in devices}
    busy = await _busy(session, app_name, [by_uuid[u].id for u in plan.targeted])
    if busy:
        raise Conflict(
            f"devices already in an active rollout of app {app_name}: "
            + ", ".join(f"{by_uuid_id(devices, i)} (rollout {r})" for i, r in busy[:20]),
            code="rollout_active",
        )
    digest = next(iter(variants.values())).digest
    # The gate holds when bytes move: a digest whose signature no longer passes its image's
    # policy does not start a rollout.
    await evidence.signature_gate(session, image.id, digest, step="rollout")
    downloads = await _downloads(session, image.id, digest, plan, by_uuid, apps)
    return Prepared(image, digest, app_name, plan, by_uuid, downloads)


async def _downloads(
    session: AsyncSession,
    image_id: int,
    digest: str,
    plan: planner.Plan,
    devices: dict[str, Device],
    apps: dict[int, DeviceApp],
) -> dict[str, int | None]:
    """Each targeted device's download: the target's blobs its current image (what it last
    reported running, else its current target) lacks; all of them when that is not known."""
    held: dict[int, str] = {
        app.device_id: current
        for app in apps.values()
        if app.image_id == image_id and (current := app.current_digest or app.digest)
    }
    # A device's current target (its tag's digest) finds the evidence of a platform digest
    # it reports running.
    tags = {a.digest for a in apps.values() if a.image_id == image_id and a.digest}
    stored = await image_size_evidence(session, image_id, {digest, *tags, *held.values()})
    known = sizes.blobs_by_digest(stored)
    target = stored.get(digest)
    found: dict[str, int | None] = {}
    for uuid in plan.targeted:
        device = devices[uuid]
        current = held.get(device.id)
        found[uuid] = sizes.device_download_bytes(
            normalise_architecture(device.architecture), current, target, known
        )
    return found


def by_uuid_id(devices: Sequence[Device], device_id: int) -> str:
    return next(d.uuid for d in devices if d.id == device_id)


async def _busy(session: AsyncSession, app_name: str, ids: list[int]) -> list[tuple[int, int]]:
    if not ids:
        return []
    rows = await session.execute(
        select(RolloutDevice.device_id, RolloutDevice.rollout_id).where(
            RolloutDevice.active.is_(True),
            RolloutDevice.app_name == app_name,
            RolloutDevice.device_id.in_(ids),
        )
    )
    return [(int(d), int(r)) for d, r in rows.all()]


async def create(
    session: AsyncSession, data: RolloutCreate, prepared: Prepared, actor: Principal
) -> Rollout:
    plan = prepared.plan
    # A continuous rollout may start with no device: it waits for those that match later.
    if not plan.batches and not data.options.continuous:
        reasons = ", ".join(f"{s.uuid}: {s.reason}" for s in plan.skipped[:20])
        raise Conflict(
            f"no device to update; every device was skipped ({reasons or 'none matched'})",
            code="no_devices",
        )
    rollout = Rollout(
        image_id=prepared.image.id,
        image=prepared.image.display_name,
        tag=data.tag,
        digest=prepared.digest,
        app_name=prepared.app_name,
        strategy=data.strategy,
        options=data.options.model_dump(),
        target_devices=list(prepared.devices),
        selector=data.selector,
        status=RolloutStatus.PENDING,
        batch_count=len(plan.batches),
        created_by=actor.identity,
    )
    session.add(rollout)
    await session.flush()
    for number, batch in enumerate(plan.batches, start=1):
        for uuid in batch:
            session.add(
                RolloutDevice(
                    rollout_id=rollout.id,
                    device_id=prepared.devices[uuid].id,
                    app_name=prepared.app_name,
                    batch=number,
                    state=DeviceState.PENDING,
                    active=True,
                    download_bytes=prepared.downloads.get(uuid),
                )
            )
    for skip in plan.skipped:
        session.add(
            RolloutDevice(
                rollout_id=rollout.id,
                device_id=prepared.devices[skip.uuid].id,
                app_name=prepared.app_name,
                state=DeviceState.SKIPPED,
                skip_reason=skip.reason,
                active=False,
            )
        )
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent rollout claimed one of the devices first
        raise Conflict(
            "a device is already in an active rollout of this app", code="rollout_active"
        ) from exc
    audit.record(
        session,
        actor=actor.identity,
        action="rollout.created",
        entity_type="rollout",
        entity_id=rollout.id,
        after={
            "reference": f"{rollout.image}:{rollout.tag}@{rollout.digest}",
            "app": rollout.app_name,
            "strategy": rollout.strategy,
            "batches": plan.batches,
            "skipped": {s.uuid: s.reason for s in plan.skipped},
            "download_bytes_total": prepared.download_total,
        },
    )
    return rollout


async def get_rollout(session: AsyncSession, rollout_id: int, *, lock: bool = False) -> Rollout:
    """The rollout; with ``lock``, read only once this transaction holds its write lock, so
    a concurrent pause/abort/worker step cannot slip between the check and the change."""
    query = select(Rollout).where(Rollout.id == rollout_id)
    if lock:
        await engine.lock(session, rollout_id)
        query = query.with_for_update().execution_options(populate_existing=True)
    rollout = await session.scalar(query)
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} not found")
    return rollout


async def list_rollouts(
    session: AsyncSession,
    *,
    status: RolloutStatus | str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Rollout], int]:
    query = select(Rollout)
    if status:
        query = query.where(Rollout.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Rollout.id.desc()).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def counts(session: AsyncSession, rollout_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: {} for i in rollout_ids}
    if rollout_ids:
        rows = await session.execute(
            select(RolloutDevice.rollout_id, RolloutDevice.state, func.count())
            .where(RolloutDevice.rollout_id.in_(list(rollout_ids)))
            .group_by(RolloutDevice.rollout_id, RolloutDevice.state)
        )
        for rid, state, n in rows.all():
            out[rid][state] = int(n)
    return out


async def device_rows(session: AsyncSession, rollout_id: int) -> list[tuple[RolloutDevice, str]]:
    rows = await session.execute(
        select(RolloutDevice, Device.uuid)
        .join(Device, Device.id == RolloutDevice.device_id)
        .where(RolloutDevice.rollout_id == rollout_id)
        .order_by(RolloutDevice.batch.is_(None), RolloutDevice.batch, RolloutDevice.id)
    )
    return [(r, u) for r, u in rows.all()]


def failure_reasons(rows: Iterable[tuple[RolloutDevice, str]]) -> dict[str, int]:
    """Failed devices by reason, from the rows ``device_rows`` read (no query of its own)."""
    failed = (row for row, _ in rows if row.state == DeviceState.FAILED)
    return dict(Counter(row.failure_reason or FailureReason.OTHER for row in failed))
