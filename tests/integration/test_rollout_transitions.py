"""Every (state, action) pair of the rollout and rollout-device machines, on both databases.

An operator's action goes through the API (the service behind every edge): allowed, it answers
the transition table's next status; refused, a 409 ``invalid_state`` that changes nothing. The
device actions go through the engine functions that own them: each moves exactly the rows whose
state allows it, to the state the table names, and leaves the others alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.db import utcnow
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.devices.states import AppHealth, AppStatus
from tagwarden.rollouts import batches, engine, joiners
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rollouts.states import (
    ACTIVE,
    DEVICE_TRANSITIONS,
    DeviceAction,
    DeviceState,
    RolloutAction,
    RolloutStatus,
    allowed_from,
    next_status,
)
from tests.factories import (
    NEW,
    activate,
    add_image,
    register,
    rollout,
)

# Each status once, and paused twice: before its first batch and after (resume differs).
STARTS = [(s, s is not RolloutStatus.PENDING) for s in RolloutStatus] + [
    (RolloutStatus.PAUSED, False)
]


async def _force(
    sessionmaker: async_sessionmaker[AsyncSession],
    rollout_id: int,
    status: RolloutStatus,
    started: bool,
) -> None:
    """Put a fresh rollout in ``status`` as the monitor and the operators would have left it."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Rollout)
            .where(Rollout.id == rollout_id)
            .values(status=status, current_batch=1 if started else None)
        )
        await session.execute(
            update(RolloutDevice)
            .where(RolloutDevice.rollout_id == rollout_id)
            .values(
                state=DeviceState.SCHEDULED if started else DeviceState.PENDING,
                active=status in ACTIVE,
            )
        )


async def test_every_operator_action_from_every_status(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    await register(client, tokens.headers("admin"), "d1")
    approver = tokens.headers("approver")
    walked = 0
    for number, (status, started) in enumerate(STARTS):
        for action in RolloutAction:
            # A new app each time: one device can be in one active rollout per app.
            app_name = f"app-{number}-{action}"
            created = await rollout(client, approver, devices=["d1"], app=app_name)
            await _force(sessionmaker, created["id"], status, started)
            response = await client.post(
                f"/api/v1/rollouts/{created['id']}/{action}", headers=approver
            )
            expected = next_status(status, action, started=started)
            shown = await client.get(f"/api/v1/rollouts/{created['id']}", headers=approver)
            if expected is None:
                assert response.status_code == 409, (status, action, response.text)
                body = response.json()
                assert body["code"] == "invalid_state"
                allowed = " or ".join(allowed_from(action))
                assert f"is {status}; only a {allowed} rollout" in body["detail"]
                assert shown.json()["status"] == status
            else:
                assert response.status_code == 200, (status, action, response.text)
                assert response.json()["status"] == expected == shown.json()["status"]
                async with sessionmaker() as session:
                    audited = await session.scalar(
                        select(AuditEntry.action)
                        .where(
                            AuditEntry.entity_type == "rollout",
                            AuditEntry.entity_id == str(created["id"]),
                            AuditEntry.action.not_like("rollout.device_%"),
                        )
                        .order_by(AuditEntry.id.desc())
                        .limit(1)
                    )
                assert audited == f"rollout.{expected}"
            walked += 1
    assert walked == len(STARTS) * len(RolloutAction)


async def _one_device_per_state(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[Rollout, dict[DeviceState, int]]:
    """A running rollout of one batch holding one device in each state (rollout device ids)."""
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    uuids = [f"dev-{state}" for state in DeviceState]
    for uuid in uuids:
        await register(client, tokens.headers("admin"), uuid)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=uuids,
        strategy="all-at-once",
        options={"bake_seconds": 0, "max_failures": "100%"},
    )
    now = utcnow()
    rows: dict[DeviceState, int] = {}
    async with sessionmaker() as session, session.begin():
        found = await session.execute(
            select(RolloutDevice, Device.uuid)
            .join(Device, Device.id == RolloutDevice.device_id)
            .where(RolloutDevice.rollout_id == created["id"])
        )
        for row, uuid in found.all():
            row.state = DeviceState(uuid.removeprefix("dev-"))
            row.batch = 1
            row.scheduled_at, row.deadline_at = now, now + timedelta(hours=1)
            rows[row.state] = row.id
        await session.execute(
            update(Rollout)
            .where(Rollout.id == created["id"])
            .values(status=RolloutStatus.RUNNING, current_batch=1, batch_count=1)
        )
    async with sessionmaker() as session:
        loaded = await session.get(Rollout, created["id"])
        assert loaded is not None
    return loaded, rows


async def _states(
    sessionmaker: async_sessionmaker[AsyncSession], rows: dict[DeviceState, int]
) -> dict[DeviceState, DeviceState]:
    async with sessionmaker() as session:
        found = dict(
            (
                await session.execute(
                    select(RolloutDevice.id, RolloutDevice.state).where(
                        RolloutDevice.id.in_(list(rows.values()))
                    )
                )
            ).all()
        )
    return {before: found[row_id] for before, row_id in rows.items()}


async def _report_all(
    sessionmaker: async_sessionmaker[AsyncSession], status: AppStatus, health: AppHealth
) -> None:
    """Every device of the fleet reports ``status`` for redis now, on the new digest."""
    async with sessionmaker() as session, session.begin():
        for device in await session.scalars(select(Device)):
            app = await session.scalar(
                select(DeviceApp).where(
                    DeviceApp.device_id == device.id, DeviceApp.app_name == "redis"
                )
            )
            if app is None:
                app = DeviceApp(device_id=device.id, app_name="redis")
                session.add(app)
            app.current_digest, app.status, app.health = NEW, status, health
            app.reported_at = utcnow() + timedelta(seconds=1)


Step = Callable[[AsyncSession, Rollout], Awaitable[None]]


async def _schedule(session: AsyncSession, rollout: Rollout) -> None:
    await engine.schedule_batch(session, rollout, 1, utcnow(), poll_interval=60)


async def _skip(session: AsyncSession, rollout: Rollout) -> None:
    await engine.skip_pending(session, rollout, RolloutStatus.ABORTED, utcnow(), actor="test")


async def _roll_back(session: AsyncSession, rollout: Rollout) -> None:
    await engine.rollback(session, rollout, utcnow(), actor="test", reason="test")


async def _advance(session: AsyncSession, rollout: Rollout) -> None:
    await batches.advance(session, rollout, utcnow() + timedelta(seconds=2), poll_interval=60)


async def _rejoin(session: AsyncSession, rollout: Rollout) -> None:
    """The rollout made continuous over every device; its skipped device was skipped as
    offline and is back (it registered just now)."""
    rollout.options = rollout.options | {"continuous": True}
    rollout.selector = {}
    await session.execute(
        update(RolloutDevice)
        .where(RolloutDevice.rollout_id == rollout.id, RolloutDevice.state == DeviceState.SKIPPED)
        .values(skip_reason="offline", active=False, batch=None)
    )
    options = engine.options_of(rollout)
    await joiners.add(session, rollout, options, utcnow(), poll_interval=60)


# Each device action, the engine step that takes it, and the report that leads there. A
# rollback also skips the devices it never targeted, so pending rows take SKIP there; the
# monitor's step starts the current batch's waiting devices, so pending rows take SCHEDULE there.
_STARTS = DeviceAction.SCHEDULE
CASES: list[tuple[DeviceAction, Step, tuple[AppStatus, AppHealth] | None, DeviceAction | None]] = [
    (DeviceAction.SCHEDULE, _schedule, None, None),
    (DeviceAction.SKIP, _skip, None, None),
    (DeviceAction.ROLL_BACK, _roll_back, None, DeviceAction.SKIP),
    (DeviceAction.UPDATE, _advance, (AppStatus.DOWNLOADING, AppHealth.UNKNOWN), _STARTS),
    (DeviceAction.SUCCEED, _advance, (AppStatus.RUNNING, AppHealth.HEALTHY), _STARTS),
    (DeviceAction.FAIL, _advance, (AppStatus.FAILED, AppHealth.UNKNOWN), _STARTS),
    (DeviceAction.REJOIN, _rejoin, None, None),
]


@pytest.mark.parametrize(("action", "step", "report", "also"), CASES, ids=[c[0] for c in CASES])
async def test_every_device_action_from_every_device_state(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    action: DeviceAction,
    step: Step,
    report: tuple[AppStatus, AppHealth] | None,
    also: DeviceAction | None,
) -> None:
    assert {c[0] for c in CASES} == set(DeviceAction)
    rollout_row, rows = await _one_device_per_state(client, tokens, sessionmaker)
    if report is not None:
        await _report_all(sessionmaker, *report)
    async with sessionmaker() as session, session.begin():
        loaded = await session.get(Rollout, rollout_row.id)
        assert loaded is not None
        await step(session, loaded)
    after = await _states(sessionmaker, rows)
    for before, now in after.items():
        moves = DEVICE_TRANSITIONS[before]
        expected = moves.get(action) or (moves.get(also) if also else None) or before
        assert now == expected, (action, before, now)
