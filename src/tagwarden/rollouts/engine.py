"""Rollout transitions shared by the rollout monitor and the operator's actions.

Each function works inside the caller's transaction and audits every transition it makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.catalogue.models import ImageTag
from tagwarden.catalogue.service import lock_images
from tagwarden.devices import service as devices
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.devices.states import FailureReason
from tagwarden.notify.service import emit
from tagwarden.platforms import normalise_architecture
from tagwarden.rollouts import gates, planner, windows
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import (
    DEVICE_TRANSITIONS,
    FINISHED,
    TOUCHED,
    DeviceAction,
    DeviceState,
    InvalidTransition,
    MonitorStep,
    RolloutAction,
    RolloutStatus,
    Transition,
    next_status,
)

MONITOR = "rollout-monitor"


def options_of(rollout: Rollout) -> planner.Options:
    return planner.Options(**rollout.options)


async def variants(session: AsyncSession, image_id: int, tag: str) -> dict[str, planner.Variant]:
    rows = await session.scalars(
        select(ImageTag).where(
            ImageTag.image_id == image_id,
            ImageTag.tag == tag,
            ImageTag.digest.is_not(None),
        )
    )
    return {
        normalise_architecture(r.architecture): planner.Variant(
            normalise_architecture(r.architecture), r.digest or "", r.platform_digest
        )
        for r in rows
    }


# What each rollout status tells the notification channels; a start tells "rollout.started".
STATUS_EVENTS = {
    RolloutStatus.PAUSED: "rollout.paused",
    RolloutStatus.COMPLETED: "rollout.completed",
    RolloutStatus.FAILED: "rollout.failed",
    RolloutStatus.ROLLED_BACK: "rollout.rolled_back",
}


async def lock(session: AsyncSession, rollout_id: int) -> None:
    """Take the rollout row's write lock before reading it.

    FOR UPDATE does it on PostgreSQL; SQLite ignores FOR UPDATE and begins its transaction
    only at the first write, so a read-check-write there could interleave with another
    writer (found in review: a pause committed over an abort). This no-op UPDATE is that
    first write on SQLite, and a row lock on PostgreSQL.
    """
    await session.execute(
        update(Rollout)
        .where(Rollout.id == rollout_id)
        .values(status=Rollout.status)
        .execution_options(synchronize_session=False)
    )


async def set_status(
    session: AsyncSession,
    rollout: Rollout,
    action: Transition,
    *,
    actor: str,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Take ``action`` on the rollout: its status becomes what the transition table says."""
    status = next_status(rollout.status, action, started=rollout.current_batch is not None)
    if status is None:
        raise InvalidTransition(f"a {rollout.status} rollout cannot take the action {action}")
    before = {"status": rollout.status, "current_batch": rollout.current_batch}
    rollout.status = status
    rollout.status_reason = reason
    audit.record(
        session,
        actor=actor,
        action=f"rollout.{status}",
        entity_type="rollout",
        entity_id=rollout.id,
        before=before,
        after={"status": status, "current_batch": rollout.current_batch, "reason": reason}
        | (extra or {}),
    )
    event = "rollout.started" if action is MonitorStep.START else STATUS_EVENTS.get(status)
    if event:
        await emit(
            session,
            event,
            {
                "rollout_id": rollout.id,
                "image": rollout.image,
                "tag": rollout.tag,
                "digest": rollout.digest,
                "app": rollout.app_name,
                "status": status,
                "reason": reason,
            },
        )


def device_state(
    entries: list[dict[str, Any]],
    rollout: Rollout,
    row: RolloutDevice,
    uuid: str,
    action: DeviceAction,
    *,
    actor: str,
    now: datetime,
    **details: Any,
) -> None:
    """Take ``action`` on one device of the rollout; its audit entry joins ``entries``, which
    the caller writes for the whole batch at once (``audit.record_many``)."""
    state = DEVICE_TRANSITIONS[row.state].get(action)
    if state is None:
        raise InvalidTransition(f"a {row.state} rollout device cannot take the action {action}")
    entries.append(
        {
            "actor": actor,
            "action": f"rollout.device_{state}",
            "entity_type": "rollout",
            "entity_id": rollout.id,
            "before": {"device": uuid, "state": row.state},
            "after": {"device": uuid, "state": state, "batch": row.batch}
            | {k: v for k, v in details.items() if v is not None},
        }
    )
    row.state = state
    if state in FINISHED:
        row.finished_at = now


async def rows_of(
    session: AsyncSession,
    rollout: Rollout,
    *,
    batch: int | None = None,
    states: Sequence[DeviceState],
) -> list[tuple[RolloutDevice, Device]]:
    query = (
        select(RolloutDevice, Device)
        .join(Device, Device.id == RolloutDevice.device_id)
        .where(RolloutDevice.rollout_id == rollout.id, RolloutDevice.state.in_(states))
        .order_by(RolloutDevice.id)
    )
    if batch is not None:
        query = query.where(RolloutDevice.batch == batch)
    return [(r, d) for r, d in (await session.execute(query)).all()]


async def apps_of(
    session: AsyncSession, app_name: str, device_ids: list[int]
) -> dict[int, DeviceApp]:
    if not device_ids:
        return {}
    rows = await session.scalars(
        select(DeviceApp).where(DeviceApp.app_name == app_name, DeviceApp.device_id.in_(device_ids))
    )
    return {a.device_id: a for a in rows}


async def failure_counts(session: AsyncSession, rollout_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(RolloutDevice.failure_reason, func.count())
        .where(RolloutDevice.rollout_id == rollout_id, RolloutDevice.state == DeviceState.FAILED)
        .group_by(RolloutDevice.failure_reason)
    )
    return {str(reason or FailureReason.OTHER): int(n) for reason, n in rows.all()}


async def schedule_batch(
    session: AsyncSession, rollout: Rollout, batch: int, now: datetime
) -> None:
    """Give one batch the new target; keep each device's previous target for a rollback."""
    await lock_images(session, [rollout.image_id])  # against a concurrent app definition change
    rows = await rows_of(session, rollout, batch=batch, states=(DeviceState.PENDING,))
    apps = await apps_of(session, rollout.app_name, [d.id for _, d in rows])
    options = options_of(rollout)
    # Outside every maintenance window the batch pre-fetches; release_window switches it.
    gate = windows.gate(options.windows, now)
    entries: list[dict[str, Any]] = []
    for row, device in rows:
        previous = apps.get(device.id)
        if previous is not None and previous.digest:
            row.had_previous = True
            row.previous_image_id = previous.image_id
            row.previous_image = previous.image
            row.previous_tag = previous.tag
            row.previous_digest = previous.digest
        devices.assign_target(
            session,
            previous,
            device.id,
            rollout.app_name,
            image_id=rollout.image_id,
            image=rollout.image,
            tag=rollout.tag,
            digest=rollout.digest,
            rollout_id=rollout.id,
            now=now,
            prefetch=not gate.open,
        )
        row.scheduled_at = now
        row.deadline_at = gates.switch_deadline(
            told_at=now, window_opened_at=None, health_timeout=options.health_timeout
        )
        device_state(
            entries, rollout, row, device.uuid, DeviceAction.SCHEDULE, actor=MONITOR, now=now
        )
    await audit.record_many(session, entries)
    # A batch that only pre-fetches has no news for hours: its devices poll at the usual pace.
    await devices.bump(session, [d.id for _, d in rows], fast=gate.open)
    rollout.current_batch = batch
    audit.record(
        session,
        actor=MONITOR,
        action="rollout.batch_targeted",
        entity_type="rollout",
        entity_id=rollout.id,
        after={"batch": batch, "devices": [d.uuid for _, d in rows]}
        | ({} if gate.open else _prefetch_details(gate)),
    )


def _prefetch_details(gate: windows.Gate) -> dict[str, Any]:
    opening = gate.next_opening
    return {"prefetch": True, "switch_at": opening.isoformat() if opening else None}


async def prefetching(
    session: AsyncSession, rollout: Rollout, batch: int
) -> list[tuple[RolloutDevice, Device, DeviceApp]]:
    """The batch's devices told to pre-fetch this rollout's target, not yet to switch."""
    rows = await rows_of(session, rollout, batch=batch, states=(DeviceState.SCHEDULED,))
    apps = await apps_of(session, rollout.app_name, [d.id for _, d in rows])
    return [
        (row, device, app)
        for row, device in rows
        if (app := apps.get(device.id)) is not None
        and app.prefetch
        and app.rollout_id == rollout.id
    ]


async def release_window(session: AsyncSession, rollout: Rollout, batch: int, now: datetime) -> int:
    """Inside a maintenance window: the batch's pre-fetching devices switch now, their health
    timeout counted from the window's opening. Returns how many were released."""
    options = options_of(rollout)
    gate = windows.gate(options.windows, now)
    if not gate.open:
        return 0
    waiting = await prefetching(session, rollout, batch)
    for row, _, app in waiting:
        app.prefetch = False
        row.scheduled_at = now  # reports before now speak about the old image
        row.deadline_at = gates.switch_deadline(
            told_at=now, window_opened_at=gate.opened_at, health_timeout=options.health_timeout
        )
    if waiting:
        await devices.bump(session, [d.id for _, d, _ in waiting], fast=True)
        audit.record(
            session,
            actor=MONITOR,
            action="rollout.batch_released",
            entity_type="rollout",
            entity_id=rollout.id,
            after={
                "batch": batch,
                "devices": [d.uuid for _, d, _ in waiting],
                "window_opened_at": gate.opened_at.isoformat() if gate.opened_at else None,
            },
        )
    return len(waiting)


async def withdraw_prefetch(
    session: AsyncSession, rollout: Rollout, now: datetime, *, actor: str
) -> None:
    """An abort: devices still waiting for a window never switched, so they get their previous
    target back (as a rollback would) rather than keep a pre-fetch nothing will release."""
    if rollout.current_batch is None:
        return
    waiting = await prefetching(session, rollout, rollout.current_batch)
    entries: list[dict[str, Any]] = []
    for row, device, app in waiting:
        devices.assign_target(
            session,
            app,
            device.id,
            rollout.app_name,
            image_id=row.previous_image_id if row.had_previous else None,
            image=row.previous_image if row.had_previous else None,
            tag=row.previous_tag if row.had_previous else None,
            digest=row.previous_digest if row.had_previous else None,
            rollout_id=None,
            now=now,
        )
        device_state(
            entries, rollout, row, device.uuid, DeviceAction.ROLL_BACK, actor=actor, now=now,
            previous=row.previous_digest, reason="never switched: aborted in pre-fetch",
        )  # fmt: skip
    await audit.record_many(session, entries)
    await devices.bump(session, [d.id for _, d, _ in waiting], fast=False)


async def deactivate(session: AsyncSession, rollout: Rollout) -> None:
    """The rollout no longer holds its devices: another one may target them."""
    await session.execute(
        update(RolloutDevice)
        .where(RolloutDevice.rollout_id == rollout.id, RolloutDevice.active.is_(True))
        .values(active=False)
        .execution_options(synchronize_session="fetch")
    )


async def skip_pending(
    session: AsyncSession, rollout: Rollout, reason: str, now: datetime, *, actor: str
) -> None:
    entries: list[dict[str, Any]] = []
    for row, device in await rows_of(session, rollout, states=(DeviceState.PENDING,)):
        row.skip_reason = reason
        device_state(entries, rollout, row, device.uuid, DeviceAction.SKIP, actor=actor, now=now)
    await audit.record_many(session, entries)


async def rollback(
    session: AsyncSession, rollout: Rollout, now: datetime, *, actor: str, reason: str
) -> None:
    """Every device this rollout updated gets its previous target back (or none, if it had none).

    A device whose app has since been retargeted by a later rollout is left alone.
    """
    restored: list[int] = []
    entries: list[dict[str, Any]] = []
    rows = await rows_of(session, rollout, states=TOUCHED)
    # The images the devices leave and go back to, as schedule_batch does for the one.
    await lock_images(session, [rollout.image_id, *(r.previous_image_id for r, _ in rows)])
    apps = await apps_of(session, rollout.app_name, [d.id for _, d in rows])
    for row, device in rows:
        app = apps.get(device.id)
        if app is not None and app.rollout_id == rollout.id:
            devices.assign_target(
                session,
                app,
                device.id,
                rollout.app_name,
                image_id=row.previous_image_id if row.had_previous else None,
                image=row.previous_image if row.had_previous else None,
                tag=row.previous_tag if row.had_previous else None,
                digest=row.previous_digest if row.had_previous else None,
                rollout_id=None,
                now=now,
            )
            restored.append(device.id)
        device_state(
            entries,
            rollout,
            row,
            device.uuid,
            DeviceAction.ROLL_BACK,
            actor=actor,
            now=now,
            previous=row.previous_digest,
        )
    await audit.record_many(session, entries)
    await skip_pending(session, rollout, RolloutStatus.ROLLED_BACK, now, actor=actor)
    await devices.bump(session, restored, fast=False)
    rollout.finished_at = now
    await deactivate(session, rollout)
    await set_status(session, rollout, RolloutAction.ROLLBACK, actor=actor, reason=reason)
