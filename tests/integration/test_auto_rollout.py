"""Auto-rollout: an image's rollout template starts a rollout when a tag activates."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import ImageTag
from tagwarden.notify.models import NotificationEvent
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tests.factories import add_redis, register, seed_request


async def _template(
    client: httpx.AsyncClient, tokens: Any, image_id: int, template: dict[str, Any]
) -> httpx.Response:
    return await client.put(
        f"/api/v1/images/{image_id}/policy",
        json={"rollout_template": template},
        headers=tokens.headers("admin"),
    )


async def test_an_approved_tag_starts_the_templates_rollout_by_itself(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    saved = await _template(
        client,
        tokens,
        image["id"],
        {"strategy": "canary", "selector": {"site": "lab"}, "options": {"canary_count": 1}},
    )
    assert saved.status_code == 200, saved.text
    for uuid, arch in (("lab-1", "amd64"), ("lab-2", "arm64")):
        await register(client, tokens.headers("admin"), uuid, arch, {"site": "lab"})
    await register(client, tokens.headers("admin"), "field-1", "amd64", {"site": "field"})
    request_id = await seed_request(sessionmaker, image["id"])

    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("approver")
    )
    assert approved.status_code == 200, approved.text

    async with sessionmaker() as session:
        [rollout] = (await session.scalars(select(Rollout))).all()
        targeted = (
            await session.scalars(
                select(RolloutDevice.batch).where(RolloutDevice.rollout_id == rollout.id)
            )
        ).all()
    assert (rollout.tag, rollout.strategy, rollout.status) == ("7.2.5-alpine", "canary", "pending")
    assert rollout.created_by == "auto-rollout (approved by approver@example.com)"
    assert sorted(targeted) == [1, 2]  # the canary, then the rest; field-1 never selected
    listed = await client.get("/api/v1/rollouts", headers=tokens.headers("viewer"))
    assert listed.json()["items"][0]["id"] == rollout.id


async def test_a_template_with_nothing_to_do_leaves_the_approval_standing(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await _template(client, tokens, image["id"], {"strategy": "all-at-once", "selector": {}})
    request_id = await seed_request(sessionmaker, image["id"])  # and no device at all

    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("approver")
    )

    assert approved.status_code == 200, approved.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Rollout)) == 0
        assert await session.scalar(select(func.count()).select_from(ImageTag)) == 2
        skipped = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "rollout.auto_skipped")
            )
        ).one()
    assert skipped.after is not None
    assert skipped.after["code"] == "no_devices"


async def test_a_template_that_could_never_start_is_refused_when_saved(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    for bad in (
        {"strategy": "canary"},  # neither devices nor selector
        {"strategy": "sideways", "selector": {}},
        {"selector": {}, "options": {"max_failures": "lots"}},
    ):
        response = await _template(client, tokens, image["id"], bad)
        assert response.status_code == 422, (bad, response.text)


async def test_rollout_transitions_reach_the_notification_outbox(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    app: Any,
) -> None:
    channel = await client.post(
        "/api/v1/notifications/channels",
        json={
            "name": "fleet",
            "kind": "webhook",
            "config": {"url": "http://127.0.0.1:9/hook"},  # never delivered here
            "events": ["rollout.started", "rollout.paused", "rollout.rolled_back"],
        },
        headers=tokens.headers("admin"),
    )
    assert channel.status_code == 201, channel.text
    image = await add_redis(client, tokens.headers("admin"))
    await _template(client, tokens, image["id"], {"strategy": "all-at-once", "selector": {}})
    await register(client, tokens.headers("admin"), "lab-1", "amd64")
    request_id = await seed_request(sessionmaker, image["id"])
    await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("approver")
    )
    async with sessionmaker() as session:
        rollout_id = await session.scalar(select(Rollout.id))

    await app.state.rollout_monitor.tick()  # pending → running: "started"
    paused = await client.post(
        f"/api/v1/rollouts/{rollout_id}/pause", headers=tokens.headers("approver")
    )
    assert paused.status_code == 200, paused.text
    rolled_back = await client.post(
        f"/api/v1/rollouts/{rollout_id}/rollback", headers=tokens.headers("approver")
    )
    assert rolled_back.status_code == 200, rolled_back.text

    async with sessionmaker() as session:
        events = (
            await session.scalars(select(NotificationEvent.event).order_by(NotificationEvent.id))
        ).all()
        payload = await session.scalar(
            select(NotificationEvent.payload).where(NotificationEvent.event == "rollout.started")
        )
    assert events == ["rollout.started", "rollout.paused", "rollout.rolled_back"]
    assert payload is not None
    assert (payload["rollout_id"], payload["tag"], payload["app"]) == (
        rollout_id,
        "7.2.5-alpine",
        "redis",
    )
