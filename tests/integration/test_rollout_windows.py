"""Maintenance windows on both databases: outside a window the batch pre-fetches, inside it
switches, and the health timeout counts from the window's opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    OLD,
    activate,
    add_image,
    bearer,
    monitor_for,
    register,
    report,
    rollout,
    show,
    states,
)

# 02:00 to 03:00 in Berlin, every night (02:00 CEST is 00:00 UTC in June).
NIGHTLY = {"cron": "0 2 * * *", "duration_minutes": 60, "timezone": "Europe/Berlin"}
NOON_BERLIN = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
OPENING = datetime(2026, 6, 11, 0, 0, tzinfo=UTC)


@pytest.fixture
async def fleet(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, str]:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    admin = tokens.headers("admin")
    return {"d1": await register(client, admin, "d1"), "d3": await register(client, admin, "d3")}


async def app_state(client: httpx.AsyncClient, uuid: str, key: str) -> Any:
    state = await client.get(f"/api/v1/device/{uuid}/state", headers=bearer(key))
    assert state.status_code == 200, state.text
    return state.json()


def at(clock: FakeClock, moment: datetime) -> None:
    clock.set(moment)


async def test_outside_a_window_devices_prefetch_and_switch_when_it_opens(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock(NOON_BERLIN.timestamp())
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    # The devices run the old image and say so, on the clock of the test.
    for uuid in fleet:
        await report(client, uuid, fleet[uuid], digest=OLD)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1", "d3"],
        strategy="all-at-once",
        options={"windows": [NIGHTLY], "health_timeout": 600, "bake_seconds": 30},
    )
    assert created["options"]["windows"] == [NIGHTLY]
    rid = created["id"]
    await monitor.tick()
    state = await app_state(client, "d1", fleet["d1"])
    assert state["apps"]["redis"]["digest"] == NEW
    assert state["apps"]["redis"]["prefetch"] is True
    assert (
        state["poll_interval"] == app.state.settings.device_poll_interval_seconds
    )  # not the fast one
    assert states(await show(client, viewer, rid)) == {"d1": "scheduled", "d3": "scheduled"}

    # Hours outside the window: no timeout, no verdict, still the old image running.
    await report(client, "d1", fleet["d1"], digest=OLD)
    at(clock, OPENING - timedelta(seconds=1))
    await monitor.tick()
    assert states(await show(client, viewer, rid)) == {"d1": "scheduled", "d3": "scheduled"}
    assert (await app_state(client, "d3", fleet["d3"]))["apps"]["redis"]["prefetch"] is True

    # The monitor's first tick inside the window, 30 s after it opened: the switch.
    at(clock, OPENING + timedelta(seconds=30))
    await monitor.tick()
    state = await app_state(client, "d1", fleet["d1"])
    assert "prefetch" not in state["apps"]["redis"]
    assert state["apps"]["redis"]["digest"] == NEW
    assert state["poll_interval"] == app.state.settings.device_active_poll_interval_seconds

    await report(client, "d1", fleet["d1"], digest=NEW)
    at(clock, OPENING + timedelta(seconds=100))
    await monitor.tick()
    at(clock, OPENING + timedelta(seconds=599))
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert states(body) == {"d1": "succeeded", "d3": "scheduled"}

    # d3 stays silent: it times out 600 s after the opening, not after its release (00:10:30).
    at(clock, OPENING + timedelta(seconds=600))
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert states(body) == {"d1": "succeeded", "d3": "failed"}
    assert body["failures"] == {"timeout": 1}


async def test_a_batch_targeted_inside_a_window_switches_at_once(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock((OPENING + timedelta(minutes=20)).timestamp())
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1"],
        strategy="all-at-once",
        options={"windows": [NIGHTLY], "health_timeout": 300},
    )
    await monitor.tick()
    state = await app_state(client, "d1", fleet["d1"])
    assert state["apps"]["redis"]["digest"] == NEW
    assert "prefetch" not in state["apps"]["redis"]
    # Targeted mid-window, its timeout counts from then.
    clock.advance(299)
    await monitor.tick()
    assert states(await show(client, tokens.headers("viewer"), created["id"])) == {
        "d1": "scheduled"
    }
    clock.advance(1)
    await monitor.tick()
    assert states(await show(client, tokens.headers("viewer"), created["id"])) == {"d1": "failed"}


async def test_an_abort_during_prefetch_gives_the_previous_target_back(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock(NOON_BERLIN.timestamp())
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1"],
        strategy="all-at-once",
        options={"windows": [NIGHTLY]},
    )
    await monitor.tick()
    assert (await app_state(client, "d1", fleet["d1"]))["apps"]["redis"]["prefetch"] is True
    aborted = await client.post(
        f"/api/v1/rollouts/{created['id']}/abort", headers=tokens.headers("approver")
    )
    assert aborted.status_code == 200, aborted.text
    assert (await app_state(client, "d1", fleet["d1"]))["apps"] == {}  # it had no target before
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert body["status"] == "aborted"
    assert states(body) == {"d1": "rolled_back"}


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (NIGHTLY | {"cron": "0 25 * * *"}, "options.windows.0.cron"),
        (NIGHTLY | {"timezone": "Europe/Atlantis"}, "unknown timezone 'Europe/Atlantis'"),
        (NIGHTLY | {"duration_minutes": 0}, "duration_minutes must be greater than 0, not 0"),
    ],
)
async def test_a_bad_window_is_a_422_that_says_what_is_wrong(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], window: Any, message: str
) -> None:
    response = await client.post(
        "/api/v1/rollouts",
        json={"image": "redis", "tag": "7.2.5-alpine", "devices": ["d1"],
              "options": {"windows": [window]}},
        headers=tokens.headers("approver"),
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"
    assert message in response.json()["detail"]
