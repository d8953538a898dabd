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
from tagwarden.rollouts import gates, pace, planner, windows
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
    return planner.Options.of(rollout.options)


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


async def state_counts(session: AsyncSession, rollout_id: int) -> dict[DeviceState, int]:
    rows = await session.execute(
        select(RolloutDevice.state, func.count())
        .where(RolloutDevice.rollout_id == rollout_id)
        .group_by(RolloutDevice.state)
    )
    return {DeviceState(state): int(n) for state, n in rows.all()}


async def _allowance(
    session: AsyncSession, rollout: Rollout, options: planner.Options, now: datetime
) -> int | None:
    """How many devices the rollout may start now (None: no limit), from the start times of
    its devices in the last minute."""
    succeeded = 0
    if options.ramp is not None:
        succeeded = (await state_counts(session, rollout.id)).get(DeviceState.SUCCEEDED, 0)
    rate = pace.rate_per_minute(options, succeeded)
    if rate is None:
        return None
    started = await session.scalars(
        select(RolloutDevice.scheduled_at).where(
            RolloutDevice.rollout_id == rollout.id,
            RolloutDevice.scheduled_at > now - pace.WINDOW,
        )
    )
    return pace.allowance(rate, [t for t in started if t is not None], now)


async def _skip_offline(
    session: AsyncSession,
    rollout: Rollout,
    rows: list[tuple[RolloutDevice, Device]],
    now: datetime,
    poll_interval: int,
) -> list[tuple[RolloutDevice, Device]]:
    """With ``offline: skip``, a device offline when its turn comes does not hold its batch:
    it is skipped (a continuous rollout takes it back once it is online); the rest remain."""
    entries: list[dict[str, Any]] = []
    online: list[tuple[RolloutDevice, Device]] = []
    for row, device in rows:
        if planner.is_offline(
            device.last_seen_at,
            device.created_at,
            now=now,
            poll_interval_seconds=poll_interval,
        ):
            row.skip_reason = "offline"
            row.active = False
            device_state(
                entries, rollout, row, device.uuid, DeviceAction.SKIP, actor=MONITOR, now=now
            )
        else:
            online.append((row, device))
    await audit.record_many(session, entries)
    return online


async def schedule_batch(
    session: AsyncSession, rollout: Rollout, batch: int, now: datetime, *, poll_interval: int
) -> int:
    """Give the batch's waiting devices the new target, as many as the rate allows (the rest
    wait in the batch for a later step); keep each one's previous target for a rollback.
    Returns how many were started or still wait."""
    options = options_of(rollout)
    # Outside every maintenance window the batch pre-fetches; release_window switches it.
    gate = windows.gate(options.windows, now)
    rows = await rows_of(session, rollout, batch=batch, states=(DeviceState.PENDING,))
    if options.offline == "skip":
        rows = await _skip_offline(session, rollout, rows, now, poll_interval)
    limit = await _allowance(session, rollout, options, now) if rows else None
    starting = rows if limit is None else rows[:limit]
    if starting:
        await lock_images(session, [rollout.image_id])  # against a concurrent app change
    apps = await apps_of(session, rollout.app_name, [d.id for _, d in starting])
    entries: list[dict[str, Any]] = []
    for row, device in starting:
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
    await devices.bump(session, [d.id for _, d in starting], fast=gate.open)
    if rollout.current_batch != batch:
        rollout.current_batch = batch
        audit.record(
            session,
            actor=MONITOR,
            action="rollout.batch_targeted",
            entity_type="rollout",
            entity_id=rollout.id,
            after={"batch": batch, "devices": [d.uuid for _, d in starting]}
            | ({} if gate.open else _prefetch_details(gate)),
        )
    return len(rows)


def _prefetch_details(gate: windows.Gate) -> dict[str, Any]:
    opening = gate.next_opening
    return {"prefetch": True, "switch_at": opening.isoformat() if opening else None}


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


def restore_previous(
    session: AsyncSession,
    rollout: Rollout,
    row: RolloutDevice,
    device_id: int,
    app: DeviceApp | None,
    now: datetime,
) -> None:
    """Give the device back the target it had before this rollout (none if it had none)."""
    devices.assign_target(
        session,
        app,
        device_id,
        rollout.app_name,
        image_id=row.previous_image_id if row.had_previous else None,
        image=row.previous_image if row.had_previous else None,
        tag=row.previous_tag if row.had_previous else None,
        digest=row.previous_digest if row.had_previous else None,
        rollout_id=None,
        now=now,
    )


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
            restore_previous(session, rollout, row, device.id, app, now)
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
