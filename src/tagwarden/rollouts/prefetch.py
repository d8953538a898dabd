"""Maintenance windows at work: which devices of a batch only pre-fetch, releasing them when a
window opens (their health timeout counted from the opening), and what an abort does to those
still waiting. When a window is open, rollouts/windows.py decides (pure); this acts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.devices import service as devices
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.rollouts import engine, gates, windows
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import DeviceAction, DeviceState

MONITOR = engine.MONITOR


async def prefetching(
    session: AsyncSession, rollout: Rollout, batch: int
) -> list[tuple[RolloutDevice, Device, DeviceApp]]:
    """The batch's devices told to pre-fetch this rollout's target, not yet to switch."""
    rows = await engine.rows_of(session, rollout, batch=batch, states=(DeviceState.SCHEDULED,))
    apps = await engine.apps_of(session, rollout.app_name, [d.id for _, d in rows])
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
    options = engine.options_of(rollout)
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
        engine.restore_previous(session, rollout, row, device.id, app, now)
        engine.device_state(
            entries, rollout, row, device.uuid, DeviceAction.ROLL_BACK, actor=actor, now=now,
            previous=row.previous_digest, reason="never switched: aborted in pre-fetch",
        )  # fmt: skip
    await audit.record_many(session, entries)
    await devices.bump(session, [d.id for _, d, _ in waiting], fast=False)
