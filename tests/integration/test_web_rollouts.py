"""The rollout and device pages without a browser: the create form, live progress, actions."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    OLD,
    activate,
    add_image,
    monitor_for,
    register,
    report,
)
from tests.integration.test_web import login


async def test_the_create_form_offers_only_approved_non_deprecated_tags(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    await activate(sessionmaker, image_id, "7.0.0", OLD, deprecated=True)
    await login(client, tokens.approver)
    html = (await client.get("/rollouts")).text
    assert f'value="{image_id}:7.2.5-alpine"' in html
    assert "7.0.0" not in html
    await login(client, tokens.viewer)
    assert "Create rollout" not in (await client.get("/rollouts")).text


async def test_a_canary_rollout_from_the_form_progresses_and_can_be_paused(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    admin = tokens.headers("admin")
    keys = {uuid: await register(client, admin, uuid) for uuid in ("d1", "d2", "d3")}
    csrf = await login(client, tokens.approver)
    created = await client.post(
        "/rollouts",
        data={
            "csrf_token": csrf,
            "target": f"{image_id}:7.2.5-alpine",
            "strategy": "canary",
            "devices": ["d1", "d2", "d3"],
            "canary_count": "1",
            "bake_seconds": "0",
        },
    )
    assert created.status_code == 303, created.text
    detail_url = created.headers["location"]
    assert (await client.get(detail_url)).status_code == 200
    await monitor.tick()
    live = (await client.get(f"{detail_url}/progress.json")).json()
    assert live["status"] == "running"
    assert [b["total"] for b in live["batches"]] == [1, 2]
    canary = next(d["uuid"] for d in live["devices"] if d["batch"] == 1)
    await report(client, canary, keys[canary], digest=NEW)
    await monitor.tick()
    live = (await client.get(f"{detail_url}/progress.json")).json()
    assert live["batches"][0]["ok"] == 1
    assert live["overall"]["ok"] == 1

    paused = await client.post(f"{detail_url}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 303
    live = (await client.get(f"{detail_url}/progress.json")).json()
    assert live["status"] == "paused"
    devices = await client.get("/devices")
    assert devices.status_code == 200
    assert 'data-device="d1"' in devices.text


async def test_a_viewer_cannot_act_on_a_rollout_and_json_progress_needs_a_session(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/rollouts/1/progress.json")).status_code == 401
    csrf = await login(client, tokens.viewer)
    refused = await client.post("/rollouts/1/abort", data={"csrf_token": csrf})
    assert refused.status_code == 403
    forged = await client.post("/rollouts", data={"csrf_token": csrf, "target": "1:x"})
    assert forged.status_code == 403
