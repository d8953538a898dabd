"""Rollout controls on both databases, with a clock the tests move: the rate and the ramp, a
failure share that stops a rollout, continuous rollouts and their late joiners, offline devices,
and relabelling a device (PATCH /api/v1/devices/{uuid})."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.clock import utc
from tagwarden.devices.models import Device
from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    activate,
    add_image,
    monitor_for,
    register,
    report,
    rollout,
    show,
    states,
    target_of,
)


@pytest.fixture
async def redis(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    return image_id


async def fleet(
    client: httpx.AsyncClient, tokens: Any, n: int, labels: dict[str, str] | None = None
) -> dict[str, str]:
    admin = tokens.headers("admin")
    return {f"d{i}": await register(client, admin, f"d{i}", labels=labels) for i in range(n)}


def started(body: Any) -> set[str]:
    return {u for u, s in states(body).items() if s != "pending"}


async def test_a_batch_starts_no_more_devices_per_minute_than_max_per_minute(
    client: httpx.AsyncClient, tokens: Any, app: Any, redis: int
) -> None:
    keys = await fleet(client, tokens, 5)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="all-at-once",
        options={"max_per_minute": 2, "bake_seconds": 0},
    )
    await monitor.tick()
    body = await show(client, viewer, created["id"])
    assert started(body) == {"d0", "d1"}
    assert body["current_batch"] == 1
    assert await target_of(client, "d2", keys["d2"]) is None
    clock.advance(30)
    await monitor.tick()
    assert started(await show(client, viewer, created["id"])) == {"d0", "d1"}
    clock.advance(30)  # a minute after the first starts
    await monitor.tick()
    assert started(await show(client, viewer, created["id"])) == {"d0", "d1", "d2", "d3"}
    for uuid in ("d0", "d1", "d2", "d3"):
        await report(client, uuid, keys[uuid], digest=NEW)
    await monitor.tick()
    # Finished devices do not lift the rate: d4 waits for the minute, and the rollout for d4.
    body = await show(client, viewer, created["id"])
    assert states(body)["d4"] == "pending"
    assert body["status"] == "running"
    clock.advance(60)
    await monitor.tick()
    await report(client, "d4", keys["d4"], digest=NEW)
    await monitor.tick()
    body = await show(client, viewer, created["id"])
    assert body["status"] == "completed"
    assert body["counts"] == {"succeeded": 5}


async def test_a_ramp_multiplies_the_rate_as_devices_succeed(
    client: httpx.AsyncClient, tokens: Any, app: Any, redis: int
) -> None:
    keys = await fleet(client, tokens, 7)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="all-at-once",
        options={
            "ramp": {"start_per_minute": 1, "factor": 2, "every_succeeded": 1},
            "bake_seconds": 0,
        },
    )
    await monitor.tick()
    assert started(await show(client, viewer, created["id"])) == {"d0"}
    await report(client, "d0", keys["d0"], digest=NEW)
    clock.advance(60)
    await monitor.tick()  # d0 succeeded: 2 a minute
    assert started(await show(client, viewer, created["id"])) == {"d0", "d1", "d2"}
    await report(client, "d1", keys["d1"], digest=NEW)
    await report(client, "d2", keys["d2"], digest=NEW)
    clock.advance(60)
    await monitor.tick()  # three succeeded: 8 a minute, more than are left
    body = await show(client, viewer, created["id"])
    assert started(body) == set(keys)
    assert body["options"]["ramp"] == {"start_per_minute": 1, "factor": 2, "every_succeeded": 1}


@pytest.mark.parametrize(
    ("on_failure", "stopped"), [("pause", "paused"), ("rollback", "rolled_back")]
)
async def test_a_failure_share_above_the_threshold_stops_the_rollout_once_enough_finished(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    redis: int,
    sessionmaker: async_sessionmaker[AsyncSession],
    on_failure: str,
    stopped: str,
) -> None:
    keys = await fleet(client, tokens, 6)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="batched",
        options={
            "batch_size": 3,
            "bake_seconds": 0,
            "abort": {"failure_percent": 30, "min_devices": 3},
            "on_failure": on_failure,
        },
    )
    assert created["options"]["max_failures"] == "100%"
    rid = created["id"]
    await monitor.tick()
    await report(client, "d0", keys["d0"], digest=NEW, status="failed", reason="pull_failed")
    await report(client, "d1", keys["d1"], digest=NEW)
    await monitor.tick()
    # One of two finished failed (50%), but fewer than min_devices have finished.
    assert (await show(client, viewer, rid))["status"] == "running"
    await report(client, "d2", keys["d2"], digest=NEW)
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert body["status"] == stopped  # 1 of 3: 33.3% > 30%
    assert body["status_reason"].startswith("1 of 3 finished device(s) failed (33.3%)")
    assert {states(body)[u] for u in ("d3", "d4", "d5")} == {
        "skipped" if on_failure == "rollback" else "pending"
    }
    if on_failure == "pause":
        # The resume accepts what failed so far: the share counts from there.
        resumed = await client.post(
            f"/api/v1/rollouts/{rid}/resume", headers=tokens.headers("approver")
        )
        assert resumed.status_code == 200, resumed.text
        await monitor.tick()
        for uuid in ("d3", "d4", "d5"):
            await report(client, uuid, keys[uuid], digest=NEW)
        await monitor.tick()
        assert (await show(client, viewer, rid))["status"] == "completed"


async def test_the_count_allowance_still_stops_a_rollout_with_a_failure_share(
    client: httpx.AsyncClient, tokens: Any, app: Any, redis: int
) -> None:
    keys = await fleet(client, tokens, 4)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="all-at-once",
        options={"max_failures": 0, "abort": {"failure_percent": 90, "min_devices": 4}},
    )
    await monitor.tick()
    await report(client, "d0", keys["d0"], digest=NEW, status="failed", reason="pull_failed")
    await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert body["status"] == "paused"
    assert body["status_reason"] == "1 device(s) failed; the rollout allows 0"


async def test_a_continuous_rollout_takes_late_joiners_until_it_is_closed(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    redis: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    admin, viewer = tokens.headers("admin"), tokens.headers("viewer")
    keys = await fleet(client, tokens, 1, labels={"site": "a"})
    other = await register(client, admin, "other", labels={"site": "b"})
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        selector={"site": "a"},
        strategy="all-at-once",
        options={"continuous": True, "bake_seconds": 0},
    )
    rid = created["id"]
    await monitor.tick()
    await report(client, "d0", keys["d0"], digest=NEW)
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert body["status"] == "running"  # every device done, but the rollout is open
    assert body["closed_at"] is None

    # A device registered after the start gets the target on the next step.
    late = await register(client, admin, "late", labels={"site": "a"})
    await monitor.tick()
    assert await target_of(client, "late", late) == NEW
    body = await show(client, viewer, rid)
    assert states(body)["late"] == "scheduled"
    assert body["batch_count"] == 2
    # So does one that gains the label.
    relabelled = await client.patch(
        "/api/v1/devices/other", json={"labels": {"site": "a", "rack": "3"}}, headers=admin
    )
    assert relabelled.status_code == 200, relabelled.text
    assert relabelled.json()["labels"] == {"site": "a", "rack": "3"}
    await monitor.tick()
    body = await show(client, viewer, rid)
    # The batch after the current one: it waits while "late"'s batch is in flight.
    assert [b["devices"] for b in body["batches"]] == [["d0"], ["late"], ["other"]]
    assert await target_of(client, "other", other) is None
    await report(client, "late", late, digest=NEW)
    await monitor.tick()
    assert await target_of(client, "other", other) == NEW

    closed = await client.post(f"/api/v1/rollouts/{rid}/close", headers=admin)
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed_at"] is not None
    again = await client.post(f"/api/v1/rollouts/{rid}/close", headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")
    after_close = await register(client, admin, "after-close", labels={"site": "a"})
    await report(client, "other", other, digest=NEW)
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert body["status"] == "completed"
    assert body["counts"] == {"succeeded": 3}
    assert "after-close" not in states(body)
    assert await target_of(client, "after-close", after_close) is None
    async with sessionmaker() as session:
        audited = set(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(rid)))
        )
    assert {"rollout.devices_joined", "rollout.closed", "rollout.completed"} <= audited


async def test_a_continuous_rollout_may_start_before_any_device_matches(
    client: httpx.AsyncClient, tokens: Any, app: Any, redis: int
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        selector={"site": "new"},
        strategy="all-at-once",
        options={"continuous": True, "bake_seconds": 0},
    )
    await monitor.tick()
    await monitor.tick()
    assert (await show(client, tokens.headers("viewer"), created["id"]))["status"] == "running"
    key = await register(client, tokens.headers("admin"), "first", labels={"site": "new"})
    await monitor.tick()
    await monitor.tick()
    assert await target_of(client, "first", key) == NEW


async def test_close_is_for_an_admin_and_a_continuous_rollout(
    client: httpx.AsyncClient, tokens: Any, redis: int
) -> None:
    await fleet(client, tokens, 1)
    plain = await rollout(client, tokens.headers("approver"), devices=["d0"])
    response = await client.post(
        f"/api/v1/rollouts/{plain['id']}/close", headers=tokens.headers("admin")
    )
    assert (response.status_code, response.json()["code"]) == (409, "not_continuous")
    continuous = await rollout(
        client,
        tokens.headers("approver"),
        selector={"site": "x"},
        app="other",
        options={"continuous": True},
    )
    response = await client.post(
        f"/api/v1/rollouts/{continuous['id']}/close", headers=tokens.headers("approver")
    )
    assert response.status_code == 403
    missing = await client.post("/api/v1/rollouts/999/close", headers=tokens.headers("admin"))
    assert missing.status_code == 404


async def test_bad_option_combinations_are_a_422_and_create_nothing(
    client: httpx.AsyncClient, tokens: Any, redis: int
) -> None:
    await fleet(client, tokens, 1)
    approver = tokens.headers("approver")
    for body in (
        {"devices": ["d0"], "options": {"continuous": True}},
        {
            "selector": {},
            "options": {
                "max_per_minute": 1,
                "ramp": {"start_per_minute": 1, "factor": 2, "every_succeeded": 1},
            },
        },
        {"selector": {}, "options": {"abort": {"failure_percent": 150, "min_devices": 1}}},
    ):
        response = await client.post(
            "/api/v1/rollouts",
            json={"image": "redis", "tag": "7.2.5-alpine"} | body,
            headers=approver,
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"]
    listed = await client.get("/api/v1/rollouts", headers=tokens.headers("viewer"))
    assert listed.json()["total"] == 0


async def _silence(
    sessionmaker: async_sessionmaker[AsyncSession], uuid: str, clock: FakeClock
) -> None:
    """The device was last seen an hour before the clock: offline."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Device)
            .where(Device.uuid == uuid)
            .values(last_seen_at=utc(clock) - timedelta(hours=1))
        )


async def test_offline_skip_lets_a_batch_go_on_without_a_silent_device(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    redis: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    keys = await fleet(client, tokens, 3)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        options={"offline": "skip", "bake_seconds": 0},
    )
    await monitor.tick()
    await _silence(sessionmaker, "d2", clock)  # gone silent after the plan, before batch 2
    await report(client, "d0", keys["d0"], digest=NEW)
    await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert states(body) == {"d0": "succeeded", "d1": "scheduled", "d2": "skipped"}
    assert {d["device"]: d["skip_reason"] for d in body["devices"]}["d2"] == "offline"
    await report(client, "d1", keys["d1"], digest=NEW)
    await monitor.tick()
    assert (await show(client, tokens.headers("viewer"), created["id"]))["status"] == "completed"


async def test_offline_wait_holds_the_batch_until_the_device_is_back(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    redis: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    keys = await fleet(client, tokens, 2)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    await _silence(sessionmaker, "d1", clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="all-at-once",
        options={"offline": "wait", "bake_seconds": 0, "health_timeout": 60},
    )
    assert created["skipped"] == []
    await monitor.tick()
    await report(client, "d0", keys["d0"], digest=NEW)
    for _ in range(3):
        clock.advance(120)  # past the deadline: the silent device is waited for, not failed
        await _silence(sessionmaker, "d1", clock)
        await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert body["status"] == "running"
    assert states(body) == {"d0": "succeeded", "d1": "scheduled"}
    await report(client, "d1", keys["d1"], digest=NEW)
    await monitor.tick()
    assert (await show(client, tokens.headers("viewer"), created["id"]))["status"] == "completed"


async def test_patching_a_device_renames_and_relabels_it_and_is_audited(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = tokens.headers("admin")
    await register(client, admin, "d0", labels={"site": "a"})
    renamed = await client.patch("/api/v1/devices/d0", json={"name": "kiosk 4"}, headers=admin)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["labels"]) == ("kiosk 4", {"site": "a"})
    for body, status in (
        ({"labels": {"": "x"}}, 422),
        ({"name": ""}, 422),
        ({"uuid": "other"}, 422),
        ({"labels": {"site": 3}}, 422),
    ):
        response = await client.patch("/api/v1/devices/d0", json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
    assert (await client.patch("/api/v1/devices/ghost", json={}, headers=admin)).status_code == 404
    forbidden = await client.patch(
        "/api/v1/devices/d0", json={"name": "x"}, headers=tokens.headers("approver")
    )
    assert forbidden.status_code == 403
    async with sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "device.updated")
        )
    assert entry is not None
    assert entry.before["name"] == "d0"
    assert entry.after["name"] == "kiosk 4"


async def test_the_next_batch_starts_under_the_same_rate(
    client: httpx.AsyncClient, tokens: Any, app: Any, redis: int
) -> None:
    keys = await fleet(client, tokens, 4)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=list(keys),
        strategy="batched",
        options={"batch_size": 2, "max_per_minute": 3, "bake_seconds": 0},
    )
    await monitor.tick()
    for uuid in ("d0", "d1"):
        await report(client, uuid, keys[uuid], digest=NEW)
    await monitor.tick()  # batch 1 done at once; two of the minute's three are used
    body = await show(client, viewer, created["id"])
    assert body["current_batch"] == 2
    assert (states(body)["d2"], states(body)["d3"]) == ("scheduled", "pending")
    clock.advance(60)
    await monitor.tick()
    assert states(await show(client, viewer, created["id"]))["d3"] == "scheduled"


async def test_a_continuous_rollout_takes_back_a_device_skipped_as_offline_once_it_polls(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    redis: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    keys = await fleet(client, tokens, 2, labels={"site": "a"})
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    await _silence(sessionmaker, "d1", clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        selector={"site": "a"},
        strategy="all-at-once",
        options={"continuous": True, "bake_seconds": 0},
    )
    assert created["skipped"] == [{"device": "d1", "reason": "offline"}]
    await monitor.tick()
    await monitor.tick()
    assert await target_of(client, "d1", keys["d1"]) is None  # that poll brings it back
    await app.state.device_presence.flush()
    await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert states(body)["d1"] == "pending"  # in the batch after the current one
    await report(client, "d0", keys["d0"], digest=NEW)
    await monitor.tick()
    assert await target_of(client, "d1", keys["d1"]) == NEW
