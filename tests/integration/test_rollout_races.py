"""An operator's transitions never override each other (found in review, on SQLite)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tagwarden.rollouts import service as rollouts
from tests.integration.test_rollouts_support import NEW, activate, add_image, register


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
