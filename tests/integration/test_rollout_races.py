"""Concurrent writers never override each other: an operator's transitions (found in review,
on SQLite), and an app definition's change against a rollout's assignment of its devices."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tagwarden.apps import service as apps_service
from tagwarden.rollouts import service as rollouts
from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    activate,
    add_image,
    bearer,
    monitor_for,
    register,
    rollout,
)


async def test_a_pause_held_up_mid_way_cannot_undo_a_concurrent_abort(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    for i in range(3):
        await register(client, tokens.headers("admin"), f"edge-{i}")
    created = await client.post(
        "/api/v1/rollouts",
        json={"image": "redis", "tag": "7.2.5-alpine", "strategy": "all-at-once", "selector": {}},
        headers=tokens.headers("approver"),
    )
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]

    # The pause stops right after reading the rollout, inside its transaction.
    entered, release = asyncio.Event(), asyncio.Event()
    original = rollouts.get_rollout

    async def slow_get_rollout(session: Any, rid: int, *, lock: bool = False) -> Any:
        found = await original(session, rid, lock=lock)
        if lock and not entered.is_set():
            entered.set()
            await release.wait()
        return found

    monkeypatch.setattr(rollouts, "get_rollout", slow_get_rollout)
    url = f"/api/v1/rollouts/{rollout_id}"
    pause = asyncio.create_task(client.post(f"{url}/pause", headers=tokens.headers("approver")))
    await entered.wait()
    abort = asyncio.create_task(client.post(f"{url}/abort", headers=tokens.headers("approver")))
    await asyncio.sleep(0.3)  # the abort is now waiting for the pause's lock
    release.set()
    paused, aborted = await pause, await abort

    assert paused.status_code == 200, paused.text
    assert aborted.status_code == 200, aborted.text
    final = await client.get(url, headers=tokens.headers("viewer"))
    assert final.json()["status"] == "aborted"
    resumed = await client.post(f"{url}/resume", headers=tokens.headers("approver"))
    assert resumed.status_code == 409


async def test_an_app_change_racing_a_rollouts_assignment_reaches_the_device(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: Any,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    key = await register(client, tokens.headers("admin"), "edge-0")
    device = bearer(key)
    url = "/api/v1/apps/redis"
    first = await client.put(
        url, json={"image_id": image_id, "config": {"env": {"V": "1"}}},
        headers=tokens.headers("admin"),
    )  # fmt: skip
    assert first.status_code == 201, first.text
    await rollout(client, tokens.headers("approver"), devices=["edge-0"], strategy="all-at-once")

    # The definition's change stops right after reading which devices have a target for the
    # app (none yet), inside its transaction; the rollout assigns the device meanwhile.
    entered, release = asyncio.Event(), asyncio.Event()
    original = apps_service._targeted

    async def slow_targeted(session: Any, name: str) -> Any:
        found = await original(session, name)
        if not entered.is_set():
            entered.set()
            await release.wait()
        return found

    monkeypatch.setattr(apps_service, "_targeted", slow_targeted)
    change = asyncio.create_task(
        client.put(url, json={"image_id": image_id, "config": {"env": {"V": "2"}}},
                   headers=tokens.headers("admin"))
    )  # fmt: skip
    await entered.wait()
    tick = asyncio.create_task(monitor_for(app, FakeClock.at_wall_time()).tick())
    await asyncio.sleep(0.5)  # the assignment has committed, or waits for the change's lock
    between = await client.get("/api/v1/device/edge-0/state", headers=device)
    assert between.status_code == 200
    release.set()
    changed, ticked = await change, await tick
    assert changed.status_code == 200, changed.text
    assert ticked == 1

    # Whatever the device saw in between, its next conditional poll brings both changes.
    final = await client.get(
        "/api/v1/device/edge-0/state", headers=device | {"If-None-Match": between.headers["etag"]}
    )
    assert final.status_code == 200, "the app's change is lost: the device's state is stale"
    body = final.json()
    assert body["apps"]["redis"]["digest"] == NEW
    assert body["apps"]["redis"]["config"]["env"] == {"V": "2"}
    assert body["version"] > between.json()["version"]
