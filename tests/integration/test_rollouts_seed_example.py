"""Seed 000's example end to end with the fleet simulator: redis 7.2.5-alpine, two devices,
canary, from the approval request to both devices running the pinned digest."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.devices.simulator import FleetSimulator
from tagwarden.testing.clock import FakeClock
from tests.factories import DIGEST, add_redis, monitor_for, seed_request


async def test_seed_example_canary_to_two_devices_with_the_simulator(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    app: Any,
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve",
        json={"notes": "Security patches included"},
        headers=tokens.headers("approver"),
    )
    assert len(approved.json()["image_tags"]) == 2

    sim = FleetSimulator(
        client, admin_headers=tokens.headers("admin"), prefix="device-uuid", seed=1
    )
    devices = await sim.register(2)
    assert [d.uuid for d in devices] == ["device-uuid-00000", "device-uuid-00001"]
    await sim.poll_all()  # nothing to run yet

    created = await client.post(
        "/api/v1/rollouts",
        json={
            "image": "redis",
            "tag": "7.2.5-alpine",
            "devices": [d.uuid for d in devices],
            "strategy": "canary",
        },
        headers=tokens.headers("approver"),
    )
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]

    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    for _ in range(10):
        await monitor.tick()
        await sim.poll_all()
        clock.advance(31)  # past the default bake of 30 s
    shown = await client.get(f"/api/v1/rollouts/{rollout_id}", headers=tokens.headers("viewer"))
    body = shown.json()
    assert body["status"] == "completed"
    assert [b["devices"] for b in body["batches"]] == [
        ["device-uuid-00000"],
        ["device-uuid-00001"],
    ]
    assert body["counts"] == {"succeeded": 2}
    assert sim.running_counts("redis") == {DIGEST: 2}

    state = await client.get("/api/v1/device/device-uuid-00000/state", headers=devices[0].headers)
    assert state.json()["apps"]["redis"]["image"] == f"redis:7.2.5-alpine@{DIGEST}"
    assert state.json()["poll_interval"] == 60  # no longer in an active batch
    assert sim.stats.not_modified > 0
