"""Rollouts on both databases: approval gate, planning, health gates, pause, rollback, abort."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.rollouts.worker import RolloutMonitor
from tagwarden.testing.clock import FakeClock
from tests.factories import (
    ARM64_PLATFORM,
    NEW,
    OLD,
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
async def fleet(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, str]:
    """redis 7.2.5-alpine activated for amd64 and arm64, and four devices (one armv7)."""
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW, platform={"arm64": ARM64_PLATFORM})
    await activate(sessionmaker, image_id, "7.2.4-alpine", OLD)
    admin = tokens.headers("admin")
    return {
        "d1": await register(client, admin, "d1"),
        "d2": await register(client, admin, "d2", "arm64"),
        "d3": await register(client, admin, "d3"),
        "pi": await register(client, admin, "pi", "arm/v7"),
    }


async def test_a_tag_that_is_not_activated_is_refused_as_not_approved(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/rollouts",
        json={"image": "redis", "tag": "9.9.9", "devices": ["d1"]},
        headers=tokens.headers("approver"),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "tag_not_approved"
    assert "not approved" in response.json()["detail"]


async def test_a_deprecated_tag_is_refused(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.0.0", OLD, deprecated=True)
    await register(client, tokens.headers("admin"), "d1")
    response = await client.post(
        "/api/v1/rollouts",
        json={"image": "redis", "tag": "7.0.0", "devices": ["d1"]},
        headers=tokens.headers("approver"),
    )
    assert response.status_code == 409
    assert "not approved" in response.json()["detail"]
    assert "deprecated" in response.json()["detail"]
    listed = await client.get("/api/v1/rollouts", headers=tokens.headers("viewer"))
    assert listed.json()["total"] == 0


@pytest.mark.parametrize(
    ("role", "body", "status"),
    [
        ("viewer", {"image": "redis", "tag": "7.2.5-alpine", "devices": ["d1"]}, 403),
        ("approver", {"image": "redis", "tag": "7.2.5-alpine"}, 422),
        ("approver", {"image": "redis", "tag": "7.2.5-alpine", "devices": ["ghost"]}, 422),
        ("approver", {"image": "nginx", "tag": "1", "devices": ["d1"]}, 404),
        ("approver", {"image": "redis", "tag": "bad tag", "devices": ["d1"]}, 422),
        (
            "approver",
            {"image": "redis", "tag": "7.2.5-alpine", "devices": ["d1"], "strategy": "yolo"},
            422,
        ),
        (
            "approver",
            {
                "image": "redis",
                "tag": "7.2.5-alpine",
                "devices": ["d1"],
                "options": {"max_failures": "lots"},
            },
            422,
        ),
        (
            "approver",
            {
                "image": "redis",
                "tag": "7.2.5-alpine",
                "devices": ["d1"],
                "strategy": "batched",
                "options": {"canary_count": 1},
            },
            422,
        ),
    ],
)
async def test_bad_rollout_requests_get_a_4xx_and_create_nothing(
    client: httpx.AsyncClient,
    tokens: Any,
    fleet: dict[str, str],
    role: str,
    body: Any,
    status: int,
) -> None:
    response = await client.post("/api/v1/rollouts", json=body, headers=tokens.headers(role))
    assert response.status_code == status, response.text
    assert set(response.json()) == {"detail", "code"}
    listed = await client.get("/api/v1/rollouts", headers=tokens.headers("viewer"))
    assert listed.json()["total"] == 0


async def test_a_device_whose_architecture_the_tag_lacks_is_skipped_with_a_reason(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str]
) -> None:
    created = await rollout(
        client, tokens.headers("approver"), devices=["d1", "pi"], strategy="all-at-once"
    )
    assert created["skipped"] == [{"device": "pi", "reason": "architecture_not_provided"}]
    assert created["batches"] == [{"batch": 1, "devices": ["d1"], "counts": {"pending": 1}}]
    assert created["target_devices"] == ["d1", "pi"]


async def test_a_dry_run_creates_nothing_and_matches_the_real_rollout(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    # d3 already runs the target: it is skipped as already on target.
    await report(client, "d3", fleet["d3"], digest=NEW)
    body = {
        "devices": ["d1", "d2", "d3", "pi"],
        "strategy": "canary",
        "options": {"canary_count": 1, "batch_size": 1},
    }
    plan = await rollout(client, tokens.headers("approver"), dry_run=True, **body)
    assert plan["dry_run"] is True
    assert [b["devices"] for b in plan["batches"]] == [["d1"], ["d2"]]
    assert {s["device"]: s["reason"] for s in plan["skipped"]} == {
        "d3": "already_on_target",
        "pi": "architecture_not_provided",
    }
    assert (await client.get("/api/v1/rollouts", headers=tokens.headers("viewer"))).json()[
        "total"
    ] == 0

    real = await rollout(client, tokens.headers("approver"), **body)
    assert [b["devices"] for b in real["batches"]] == [b["devices"] for b in plan["batches"]]
    assert real["skipped"] == plan["skipped"]
    await monitor.tick()
    assert states(await show(client, tokens.headers("viewer"), real["id"]))["d1"] == "scheduled"


async def test_seed_canary_succeeds_only_on_healthy_running_target_digest_after_bake(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    viewer = tokens.headers("viewer")
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1", "d2"],
        options={"bake_seconds": 60, "health_timeout": 600},
    )
    rid = created["id"]
    await monitor.tick()
    assert states(await show(client, viewer, rid)) == {"d1": "scheduled", "d2": "pending"}
    assert await target_of(client, "d1", fleet["d1"]) == NEW
    assert await target_of(client, "d2", fleet["d2"]) is None

    # Installed is not healthy: wrong digest, then unhealthy, never count.
    await report(client, "d1", fleet["d1"], digest=OLD)
    await monitor.tick()
    await report(client, "d1", fleet["d1"], digest=NEW, health="unhealthy")
    clock.advance(120)
    await monitor.tick()
    assert states(await show(client, viewer, rid))["d1"] == "updating"

    await report(client, "d1", fleet["d1"], digest=NEW)
    await monitor.tick()
    clock.advance(30)
    await monitor.tick()
    assert states(await show(client, viewer, rid))["d1"] == "updating"  # still baking
    clock.advance(31)
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert states(body) == {"d1": "succeeded", "d2": "scheduled"}
    assert body["current_batch"] == 2

    # arm64 may report its platform digest rather than the index digest.
    await report(client, "d2", fleet["d2"], digest=ARM64_PLATFORM)
    await monitor.tick()
    clock.advance(61)
    await monitor.tick()
    body = await show(client, viewer, rid)
    assert body["status"] == "completed"
    assert body["counts"] == {"succeeded": 2}


async def test_a_canary_failure_pauses_the_rollout_and_targets_no_further_batch(
    client: httpx.AsyncClient,
    tokens: Any,
    fleet: dict[str, str],
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(client, tokens.headers("approver"), devices=["d1", "d2", "d3"])
    await monitor.tick()
    await report(client, "d1", fleet["d1"], digest=NEW, status="failed", reason="pull_failed")
    await monitor.tick()
    for _ in range(3):
        clock.advance(1000)
        await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert body["status"] == "paused"
    assert body["failures"] == {"pull_failed": 1}
    assert states(body) == {"d1": "failed", "d2": "pending", "d3": "pending"}
    assert await target_of(client, "d2", fleet["d2"]) is None
    async with sessionmaker() as session:
        targeted = await session.scalar(
            select(func.count()).where(AuditEntry.action == "rollout.batch_targeted")
        )
    assert targeted == 1

    resumed = await client.post(
        f"/api/v1/rollouts/{created['id']}/resume", headers=tokens.headers("approver")
    )
    assert resumed.json()["status"] == "running"
    await monitor.tick()
    assert states(await show(client, tokens.headers("viewer"), created["id"]))["d2"] == "scheduled"


async def test_a_silent_device_times_out(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1"],
        strategy="all-at-once",
        options={"health_timeout": 300},
    )
    await monitor.tick()
    clock.advance(299)
    await monitor.tick()
    assert states(await show(client, tokens.headers("viewer"), created["id"]))["d1"] == "scheduled"
    clock.advance(2)
    await monitor.tick()
    body = await show(client, tokens.headers("viewer"), created["id"])
    assert body["devices"][0]["failure_reason"] == "timeout"
    assert body["failures"] == {"timeout": 1}
    assert body["status"] == "paused"


async def test_crossing_the_threshold_with_on_failure_rollback_restores_previous_images(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    approver = tokens.headers("approver")
    # First everyone runs 7.2.4-alpine.
    first = await rollout(
        client,
        approver,
        tag="7.2.4-alpine",
        devices=["d1", "d2"],
        strategy="all-at-once",
        options={"bake_seconds": 0},
    )
    await monitor.tick()
    for uuid in ("d1", "d2"):
        await report(client, uuid, fleet[uuid], digest=OLD)
    await monitor.tick()
    assert (await show(client, approver, first["id"]))["status"] == "completed"

    second = await rollout(
        client,
        approver,
        devices=["d1", "d2", "d3"],
        strategy="batched",
        options={"batch_size": 2, "on_failure": "rollback", "max_failures": "40%"},
    )
    await monitor.tick()
    assert await target_of(client, "d1", fleet["d1"]) == NEW
    await report(client, "d1", fleet["d1"], digest=NEW, status="failed", reason="crashloop")
    await report(client, "d2", fleet["d2"], digest=NEW, status="failed", reason="disk_full")
    await monitor.tick()
    body = await show(client, approver, second["id"])
    assert body["status"] == "rolled_back"
    assert states(body) == {"d1": "rolled_back", "d2": "rolled_back", "d3": "skipped"}
    assert await target_of(client, "d1", fleet["d1"]) == OLD
    assert await target_of(client, "d2", fleet["d2"]) == OLD
    assert await target_of(client, "d3", fleet["d3"]) is None
    # Every device's every step is in the audit log, in the order it happened.
    audit = await client.get(
        f"/api/v1/audit?entity_type=rollout&entity_id={second['id']}&limit=100",
        headers=tokens.headers("viewer"),
    )
    steps = [
        (e["after"]["device"], e["action"].removeprefix("rollout.device_"))
        for e in reversed(audit.json()["items"])  # oldest first
        if e["action"].startswith("rollout.device_")
    ]
    assert steps == [
        ("d1", "scheduled"),
        ("d2", "scheduled"),
        ("d1", "failed"),
        ("d2", "failed"),
        ("d1", "rolled_back"),
        ("d2", "rolled_back"),
        ("d3", "skipped"),
    ]


async def test_manual_rollback_and_abort(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    approver = tokens.headers("approver")
    created = await rollout(client, approver, devices=["d1", "d2", "d3"])
    await monitor.tick()
    aborted = await client.post(f"/api/v1/rollouts/{created['id']}/abort", headers=approver)
    assert aborted.status_code == 200
    assert aborted.json()["status"] == "aborted"
    assert states(aborted.json()) == {"d1": "scheduled", "d2": "skipped", "d3": "skipped"}
    await monitor.tick()
    assert await target_of(client, "d2", fleet["d2"]) is None
    again = await client.post(f"/api/v1/rollouts/{created['id']}/pause", headers=approver)
    assert again.status_code == 409

    # An aborted rollout frees its devices; rolling it back removes what it had set.
    rolled = await client.post(f"/api/v1/rollouts/{created['id']}/rollback", headers=approver)
    assert rolled.json()["status"] == "rolled_back"
    assert await target_of(client, "d1", fleet["d1"]) is None
    viewer = await client.post(
        f"/api/v1/rollouts/{created['id']}/rollback", headers=tokens.headers("viewer")
    )
    assert viewer.status_code == 403


async def test_one_active_rollout_per_device_and_app(
    client: httpx.AsyncClient, tokens: Any, fleet: dict[str, str]
) -> None:
    await rollout(client, tokens.headers("approver"), devices=["d1"])
    response = await client.post(
        "/api/v1/rollouts",
        json={"image": "redis", "tag": "7.2.4-alpine", "devices": ["d1", "d3"]},
        headers=tokens.headers("approver"),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "rollout_active"
    other_app = await rollout(client, tokens.headers("approver"), devices=["d1"], app="cache")
    assert other_app["app"] == "cache"


@pytest.mark.postgres_only
async def test_two_rollout_workers_never_advance_the_same_batch_twice(
    client: httpx.AsyncClient,
    tokens: Any,
    fleet: dict[str, str],
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock.at_wall_time()
    monitor_for(app, clock)
    rollouts = [
        await rollout(
            client,
            tokens.headers("approver"),
            devices=[uuid],
            app=f"app{n}",
            options={"bake_seconds": 0},
        )
        for n, uuid in enumerate(("d1", "d2", "d3"))
    ]
    workers = [
        RolloutMonitor(app.state.settings, app.state.sessionmaker, clock=clock),
        RolloutMonitor(app.state.settings, sessionmaker, clock=clock),
    ]
    for _ in range(3):
        await asyncio.gather(*(w.tick() for w in workers))
    # A two-batch rollout whose first batch is healthy: both workers race to target batch 2.
    staged = await rollout(
        client,
        tokens.headers("approver"),
        devices=["d1", "d2"],
        options={"bake_seconds": 0, "canary_count": 1},
    )
    rollouts.append(staged)
    await workers[0].tick()
    await report(client, "d1", fleet["d1"], digest=NEW)
    for _ in range(3):
        await asyncio.gather(*(w.tick() for w in workers))
    assert (await show(client, tokens.headers("viewer"), staged["id"]))["current_batch"] == 2
    async with sessionmaker() as session:
        targeted = (
            await session.scalars(
                select(AuditEntry.entity_id).where(AuditEntry.action == "rollout.batch_targeted")
            )
        ).all()
        started = await session.scalar(
            select(func.count()).where(AuditEntry.action == "rollout.running")
        )
    expected = [str(r["id"]) for r in rollouts] + [str(staged["id"])]
    assert sorted(targeted) == sorted(expected)  # the staged rollout: batch 1 and batch 2, once
    assert started == 4
