"""The rollout monitor's step: judge the current batch by the devices' reports, then pause,
roll back, move on to the next batch or finish."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.devices import service as devices
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.platforms import normalise_architecture
from tagwarden.rollouts import engine, gates, joiners, pace, planner, prefetch
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import (
    IN_FLIGHT,
    DeviceState,
    MonitorStep,
    RolloutAction,
    RolloutStatus,
    device_action,
)


async def advance(
    session: AsyncSession, rollout: Rollout, now: datetime, *, poll_interval: int
) -> None:
    """One step of one rollout: judge the current batch, then pause, roll back, start waiting
    devices (as the rate allows), move on or finish. ``poll_interval``: the devices' poll
    interval, which says who is offline."""
    if rollout.status == RolloutStatus.PENDING:
        rollout.started_at = now
        await engine.set_status(session, rollout, MonitorStep.START, actor=engine.MONITOR)
        if rollout.batch_count:
            await engine.schedule_batch(session, rollout, 1, now, poll_interval=poll_interval)
        else:  # a continuous rollout waiting for its first devices: started, no batch yet
            rollout.current_batch = 0
        return
    if rollout.status != RolloutStatus.RUNNING or rollout.current_batch is None:
        return
    options = engine.options_of(rollout)
    if options.windows:
        await prefetch.release_window(session, rollout, rollout.current_batch, now)
    if joiners.is_open(rollout, options):
        await joiners.add(session, rollout, options, now, poll_interval=poll_interval)
    in_flight = await _judge_batch(
        session, rollout, options, rollout.current_batch, now, poll_interval
    )
    tally = await engine.state_counts(session, rollout.id)
    if await _stopped_on_failures(session, rollout, options, tally, now):
        return
    busy = await engine.schedule_batch(
        session, rollout, rollout.current_batch, now, poll_interval=poll_interval
    )
    if busy or any(row.state in IN_FLIGHT for row, _ in in_flight):
        return
    if rollout.current_batch < rollout.batch_count:
        await engine.schedule_batch(
            session, rollout, rollout.current_batch + 1, now, poll_interval=poll_interval
        )
        return
    if joiners.is_open(rollout, options):
        return  # open for devices that match later, until an admin closes it
    await _finish(session, rollout, tally, now)


async def _judge_batch(
    session: AsyncSession,
    rollout: Rollout,
    options: planner.Options,
    batch: int,
    now: datetime,
    poll_interval: int,
) -> list[tuple[RolloutDevice, Device]]:
    """Move each in-flight device of the batch to the state its latest report earns; returns the
    rows judged, with their new states."""
    arch_variants = await engine.variants(session, rollout.image_id, rollout.tag)
    in_flight = await engine.rows_of(session, rollout, batch=batch, states=IN_FLIGHT)
    apps = await engine.apps_of(session, rollout.app_name, [d.id for _, d in in_flight])
    finished: list[int] = []
    entries: list[dict[str, Any]] = []
    for row, device in in_flight:
        app = apps.get(device.id)
        if app is not None and app.prefetch:
            continue  # told only to pre-fetch: nothing to judge before its window opens
        variant = arch_variants.get(normalise_architecture(device.architecture))
        if options.offline == "wait" and row.state == DeviceState.SCHEDULED:
            _wait_while_offline(row, device, options, now, poll_interval)
        verdict = gates.assess(
            state=row.state,
            report=_report_of(app),
            accepted_digests=variant.accepted if variant else frozenset({rollout.digest}),
            scheduled_at=row.scheduled_at or now,
            deadline_at=row.deadline_at or now,
            healthy_since=row.healthy_since,
            bake_seconds=options.bake_seconds,
            now=now,
        )
        row.healthy_since = verdict.healthy_since
        if verdict.state == row.state:
            continue
        if verdict.state == DeviceState.FAILED:
            row.failure_reason = verdict.failure_reason
            row.message = app.message if app else None
        engine.device_state(
            entries,
            rollout,
            row,
            device.uuid,
            device_action(row.state, verdict.state),
            actor=engine.MONITOR,
            now=now,
            reason=verdict.failure_reason,
        )
        if verdict.state in (DeviceState.SUCCEEDED, DeviceState.FAILED):
            finished.append(device.id)
    await audit.record_many(session, entries)
    await devices.bump(session, finished, fast=False)
    await session.flush()
    return in_flight


def _report_of(app: DeviceApp | None) -> gates.Report:
    """What the device last said about the app; all empty before its first report."""
    return gates.Report(
        status=app.status if app else None,
        health=app.health if app else None,
        digest=app.current_digest if app else None,
        reason=app.reason if app else None,
        reported_at=app.reported_at if app else None,
    )


def _wait_while_offline(
    row: RolloutDevice,
    device: Device,
    options: planner.Options,
    now: datetime,
    poll_interval: int,
) -> None:
    """``offline: wait``: the batch waits for an offline device, so its deadline runs only
    from when it is back."""
    if planner.is_offline(
        device.last_seen_at, device.created_at, now=now, poll_interval_seconds=poll_interval
    ):
        row.deadline_at = now + timedelta(seconds=options.health_timeout)


def _failure_reason(
    rollout: Rollout, options: planner.Options, tally: dict[DeviceState, int], targeted: int
) -> str | None:
    """Why the rollout stops on its failures (None: it goes on). Both criteria count only the
    devices finished since the last resume: whoever resumed accepted those before."""
    failed = tally.get(DeviceState.FAILED, 0)
    allowance = planner.failure_allowance(options.max_failures, targeted)
    if failed - rollout.failures_at_resume > allowance:
        return f"{failed} device(s) failed; the rollout allows {allowance}"
    if options.abort is None:
        return None
    new_failed = failed - rollout.failures_at_resume
    finished = failed + tally.get(DeviceState.SUCCEEDED, 0) - rollout.finished_at_resume
    if not pace.failure_share_exceeded(options.abort, finished=finished, failed=new_failed):
        return None
    return (
        f"{new_failed} of {finished} finished device(s) failed "
        f"({100 * new_failed / finished:.1f}%); the rollout stops above "
        f"{options.abort.failure_percent:g}% once {options.abort.min_devices} have finished"
    )


async def _stopped_on_failures(
    session: AsyncSession,
    rollout: Rollout,
    options: planner.Options,
    tally: dict[DeviceState, int],
    now: datetime,
) -> bool:
    """Pause or roll back once more devices failed since the last resume than the rollout
    allows, or a larger share of them than ``abort`` allows; True when it did."""
    targeted = await session.scalar(
        select(func.count()).where(
            RolloutDevice.rollout_id == rollout.id, RolloutDevice.batch.is_not(None)
        )
    )
    reason = _failure_reason(rollout, options, tally, int(targeted or 0))
    if reason is None:
        return False
    if options.on_failure == "rollback":
        await engine.rollback(session, rollout, now, actor=engine.MONITOR, reason=reason)
    else:
        await engine.set_status(
            session, rollout, RolloutAction.PAUSE, actor=engine.MONITOR, reason=reason
        )
    return True


async def _finish(
    session: AsyncSession, rollout: Rollout, tally: dict[DeviceState, int], now: datetime
) -> None:
    """The last batch is done: complete, or fail when not one device succeeded."""
    rollout.finished_at = now
    await engine.deactivate(session, rollout)
    if not tally.get(DeviceState.SUCCEEDED) and tally.get(DeviceState.FAILED):
        await engine.set_status(
            session, rollout, MonitorStep.FAIL, actor=engine.MONITOR, reason="no device succeeded"
        )
    else:
        await engine.set_status(session, rollout, MonitorStep.COMPLETE, actor=engine.MONITOR)
