"""Late joiners of a continuous rollout: devices that match its selector after it started.

While an open continuous rollout runs, each step of the rollout monitor adds to the batch after
the current one every device that now matches the selector and is not in the rollout yet (it
registered, or gained the labels, since), and takes back those it skipped as offline that are
online again. A device held by another active rollout of the app is left for later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.devices.service import with_labels
from tagwarden.rollouts import engine, planner
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import DeviceAction, DeviceState


def is_open(rollout: Rollout, options: planner.Options) -> bool:
    """A continuous rollout takes new devices until an admin closes it."""
    return options.continuous and rollout.closed_at is None


def _candidate(device: Device, app: DeviceApp | None) -> planner.Candidate:
    return planner.Candidate(
        uuid=device.uuid,
        architecture=device.architecture,
        registered_at=device.created_at,
        last_seen_at=device.last_seen_at,
        target_digest=app.digest if app else None,
        reported_digest=app.current_digest if app else None,
        reported_status=app.status if app else None,
    )


async def _matching(session: AsyncSession, rollout: Rollout) -> tuple[list[Device], list[Any]]:
    """Devices matching the selector, free of other active rollouts of the app: those not in
    this rollout, and this rollout's rows of those it skipped as offline."""
    held = select(RolloutDevice.device_id).where(
        RolloutDevice.active.is_(True), RolloutDevice.app_name == rollout.app_name
    )
    in_rollout = select(RolloutDevice.device_id).where(RolloutDevice.rollout_id == rollout.id)
    matching = with_labels(select(Device), rollout.selector or {}).where(Device.id.not_in(held))
    new = await session.scalars(matching.where(Device.id.not_in(in_rollout)).order_by(Device.id))
    skipped = await session.execute(
        select(RolloutDevice, Device)
        .join(Device, Device.id == RolloutDevice.device_id)
        .where(
            Device.id.in_(with_labels(select(Device.id), rollout.selector or {})),
            RolloutDevice.rollout_id == rollout.id,
            RolloutDevice.state == DeviceState.SKIPPED,
            RolloutDevice.skip_reason == "offline",
            Device.id.not_in(held),
        )
        .order_by(RolloutDevice.id)
    )
    return list(new), list(skipped.all())


async def add(
    session: AsyncSession,
    rollout: Rollout,
    options: planner.Options,
    now: datetime,
    *,
    poll_interval: int,
) -> list[str]:
    """Put the late joiners into the batch after the current one; returns their uuids."""
    new, skipped = await _matching(session, rollout)
    if not new and not skipped:
        return []
    variants = await engine.variants(session, rollout.image_id, rollout.tag)
    ids = [d.id for d in new] + [d.id for _, d in skipped]
    apps = await engine.apps_of(session, rollout.app_name, ids)

    def reason(device: Device) -> str | None:
        return planner.skip_reason(
            _candidate(device, apps.get(device.id)),
            variants,
            now=now,
            poll_interval_seconds=poll_interval,
            keep_offline=options.offline == "wait",
        )

    batch = (rollout.current_batch or 0) + 1
    joined: list[str] = []
    entries: list[dict[str, Any]] = []
    async with session.begin_nested() as savepoint:
        for device in new:
            why = reason(device)
            if why == "offline":
                continue  # it joins once it is online
            row = RolloutDevice(
                rollout_id=rollout.id, device_id=device.id, app_name=rollout.app_name
            )
            row.state, row.active = (
                (DeviceState.SKIPPED, False) if why else (DeviceState.PENDING, True)
            )
            row.batch, row.skip_reason = (None, why) if why else (batch, None)
            row.finished_at = now if why else None
            session.add(row)
            if not why:
                joined.append(device.uuid)
        for row, device in skipped:
            if reason(device) is None:
                row.batch, row.skip_reason, row.active, row.finished_at = batch, None, True, None
                engine.device_state(
                    entries,
                    rollout,
                    row,
                    device.uuid,
                    DeviceAction.REJOIN,
                    actor=engine.MONITOR,
                    now=now,
                )
                joined.append(device.uuid)
        try:
            await session.flush()
        except IntegrityError:
            # Another rollout of the app claimed one of them first: try again next step.
            await savepoint.rollback()
            return []
    await audit.record_many(session, entries)
    if joined:
        rollout.batch_count = max(rollout.batch_count, batch)
        audit.record(
            session,
            actor=engine.MONITOR,
            action="rollout.devices_joined",
            entity_type="rollout",
            entity_id=rollout.id,
            after={"batch": batch, "devices": joined},
        )
    return joined
