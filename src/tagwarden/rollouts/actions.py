"""An operator's actions on a rollout: pause, resume, abort, roll back; each refused with 409
``invalid_state`` where the rollout's status does not allow it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.errors import Conflict
from tagwarden.rollouts import engine, prefetch, service
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.states import (
    ACTIVE,
    IN_FLIGHT,
    PAST,
    DeviceState,
    RolloutAction,
    RolloutStatus,
    allowed_from,
)


def _require(rollout: Rollout, action: RolloutAction) -> None:
    """409 ``invalid_state`` for an action the rollout's status does not allow."""
    allowed = allowed_from(action)
    if rollout.status not in allowed:
        raise Conflict(
            f"rollout {rollout.id} is {rollout.status}; only a {' or '.join(allowed)} rollout "
            f"can be {PAST[action]}",
            code="invalid_state",
        )


async def pause(session: AsyncSession, rollout_id: int, actor: Principal, now: datetime) -> Rollout:
    rollout = await service.get_rollout(session, rollout_id, lock=True)
    _require(rollout, RolloutAction.PAUSE)
    await engine.set_status(
        session, rollout, RolloutAction.PAUSE, actor=actor.identity, reason="paused by operator"
    )
    return rollout


async def resume(
    session: AsyncSession, rollout_id: int, actor: Principal, now: datetime
) -> Rollout:
    rollout = await service.get_rollout(session, rollout_id, lock=True)
    _require(rollout, RolloutAction.RESUME)
    # Failures so far are accepted by whoever resumes; devices in flight get a fresh deadline.
    tally = await engine.state_counts(session, rollout.id)
    rollout.failures_at_resume = tally.get(DeviceState.FAILED, 0)
    rollout.finished_at_resume = rollout.failures_at_resume + tally.get(DeviceState.SUCCEEDED, 0)
    timeout = timedelta(seconds=engine.options_of(rollout).health_timeout)
    for row, _ in await service.device_rows(session, rollout.id):
        if row.state in IN_FLIGHT:
            row.deadline_at = now + timeout
    await engine.set_status(
        session, rollout, RolloutAction.RESUME, actor=actor.identity, reason="resumed"
    )
    return rollout


async def abort(session: AsyncSession, rollout_id: int, actor: Principal, now: datetime) -> Rollout:
    """Stop: no further device is targeted; devices already updated keep the new target."""
    rollout = await service.get_rollout(session, rollout_id, lock=True)
    _require(rollout, RolloutAction.ABORT)
    await prefetch.withdraw_prefetch(session, rollout, now, actor=actor.identity)
    await engine.skip_pending(session, rollout, RolloutStatus.ABORTED, now, actor=actor.identity)
    rollout.finished_at = now
    await engine.deactivate(session, rollout)
    await engine.set_status(
        session, rollout, RolloutAction.ABORT, actor=actor.identity, reason="aborted by operator"
    )
    return rollout


async def rollback(
    session: AsyncSession, rollout_id: int, actor: Principal, now: datetime
) -> Rollout:
    rollout = await service.get_rollout(session, rollout_id, lock=True)
    _require(rollout, RolloutAction.ROLLBACK)
    await engine.rollback(
        session, rollout, now, actor=actor.identity, reason="rolled back by operator"
    )
    return rollout


async def close(session: AsyncSession, rollout_id: int, actor: Principal, now: datetime) -> Rollout:
    """A continuous rollout takes no more devices; it completes once those it has are done."""
    rollout = await service.get_rollout(session, rollout_id, lock=True)
    if not engine.options_of(rollout).continuous:
        raise Conflict(
            f"rollout {rollout.id} is not continuous; only a continuous rollout is closed",
            code="not_continuous",
        )
    if rollout.closed_at is not None:
        raise Conflict(f"rollout {rollout.id} is already closed", code="invalid_state")
    if rollout.status not in ACTIVE:
        raise Conflict(
            f"rollout {rollout.id} is {rollout.status}; only a {' or '.join(ACTIVE)} rollout "
            "can be closed",
            code="invalid_state",
        )
    rollout.closed_at = now
    audit.record(
        session,
        actor=actor.identity,
        action="rollout.closed",
        entity_type="rollout",
        entity_id=rollout.id,
        after={"closed_at": now.isoformat(), "status": rollout.status},
    )
    return rollout


Operation = Callable[[AsyncSession, int, Principal, datetime], Awaitable[Rollout]]
# An operator's action, whichever edge it comes from: the API, the rollout page, the CLI.
OPERATIONS: dict[RolloutAction, Operation] = {
    RolloutAction.PAUSE: pause,
    RolloutAction.RESUME: resume,
    RolloutAction.ABORT: abort,
    RolloutAction.ROLLBACK: rollback,
}


async def act(
    session: AsyncSession, rollout_id: int, action: RolloutAction, actor: Principal, now: datetime
) -> Rollout:
    """Take an operator's action on a rollout (409 ``invalid_state`` where its status refuses)."""
    return await OPERATIONS[action](session, rollout_id, actor, now)
