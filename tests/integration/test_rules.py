"""Approval rules with the monitor and the fake registry, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import ImageTag
from tagwarden.config import Settings
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.rules.worker import RulesWorker
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry

HUB = "http://hub.fake"
HOUR = 3600


@dataclass
class World:
    fake: FakeRegistry
    clock: FakeClock
    monitor: ImageMonitor
    rules: RulesWorker
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]

    async def requests(self) -> dict[str, ApprovalRequest]:
        async with self.sessionmaker() as session:
            rows = (await session.scalars(select(ApprovalRequest))).all()
        return {str(r.tag_name): r for r in rows}

    async def activated(self) -> set[str]:
        async with self.sessionmaker() as session:
            return set((await session.scalars(select(ImageTag.tag))).all())


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    configured = Settings(
        database_url=settings.database_url,
        monitor_enabled=False,
        outbox_worker_enabled=False,
        rules_worker_enabled=False,
        dockerhub_api_url=HUB,
        # The fake Hub is served in-process; Syft would dial Docker Hub's real registry.
        sbom_syft=False,
    )
    app = create_app(configured, registry_transport=fake.transport())

    def now() -> datetime:
        return datetime.fromtimestamp(clock.now(), UTC)

    monitor: ImageMonitor = app.state.monitor
    monitor.clock = now
    rules: RulesWorker = app.state.rules_worker
    rules.clock = now
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, clock, monitor, rules, client, sessionmaker, tokens.headers("admin"))


async def test_a_patch_rule_approves_only_a_patch_bump_and_only_once_it_is_old_enough(
    world: World,
) -> None:
    world.fake.add_repository("library/redis", 3, tag_names=lambda i: f"7.2.{i}")
    added = await world.client.post(
        "/api/v1/images",
        json={"image_name": "redis", "watch_for_updates": True, "tag_policy": "all"},
        headers=world.admin,
    )
    image_id = added.json()["id"]
    await world.monitor.run_once(force=True)
    [(first_tag, first)] = (await world.requests()).items()
    approved = await world.client.post(
        f"/api/v1/images/approvals/{first.id}/approve", headers=world.admin
    )
    assert approved.status_code == 200
    rule = await world.client.post(
        f"/api/v1/images/{image_id}/rules",
        json={"name": "patch-after-a-day", "kind": "patch", "min_age_hours": 24},
        headers=world.admin,
    )
    assert rule.status_code == 201, rule.text

    world.clock.advance(HOUR)
    for tag in ("7.2.9", "7.3.0", "7.2.10-rc1", "7.2.9-alpine"):
        world.fake.push_tag("library/redis", tag)
    await world.monitor.run_once(force=True)
    requests = await world.requests()
    assert set(requests) == {first_tag, "7.2.9", "7.3.0", "7.2.10-rc1", "7.2.9-alpine"}
    assert all(r.status == "pending" for t, r in requests.items() if t != first_tag)

    world.clock.advance(23 * HOUR)  # 23 h after the push: not yet
    assert await world.rules.run_once() == []
    assert (await world.requests())["7.2.9"].status == "pending"

    world.clock.advance(2 * HOUR)
    assert await world.rules.run_once() == [requests["7.2.9"].id]
    after = await world.requests()
    assert after["7.2.9"].status == "approved"
    assert after["7.2.9"].reviewed_by == "rule:patch-after-a-day"
    assert "patch" in (after["7.2.9"].notes or "")
    # Not a patch bump: a minor bump, a pre-release, another variant.
    for tag in ("7.3.0", "7.2.10-rc1", "7.2.9-alpine"):
        assert after[tag].status == "pending", tag
    # Approved through the same path as a person's: activated at once.
    assert "7.2.9" in await world.activated()
    assert await world.rules.run_once() == []


async def test_an_old_enough_tag_is_approved_when_its_request_is_created(world: World) -> None:
    world.fake.add_repository("library/nginx", 2, tag_names=lambda i: f"1.25.{i}-bookworm")
    added = await world.client.post(
        "/api/v1/images",
        json={"image_name": "nginx", "watch_for_updates": True},
        headers=world.admin,
    )
    image_id = added.json()["id"]
    await world.client.post(
        f"/api/v1/images/{image_id}/rules",
        json={"name": "bookworm", "kind": "regex", "pattern": r"1\.25\.\d+-bookworm"},
        headers=world.admin,
    )
    await world.monitor.run_once(force=True)
    [request] = (await world.requests()).values()
    assert (request.status, request.reviewed_by) == ("approved", "rule:bookworm")
    assert await world.activated() == {request.tag_name}


async def test_a_rejection_sticks_to_its_digest_even_with_rules(world: World) -> None:
    world.fake.add_repository("library/redis", 2, tag_names=lambda i: f"7.2.{i}")
    added = await world.client.post(
        "/api/v1/images", json={"image_name": "redis", "watch_for_updates": True},
        headers=world.admin,
    )  # fmt: skip
    image_id = added.json()["id"]
    await world.monitor.run_once(force=True)
    [request] = (await world.requests()).values()
    await world.client.post(f"/api/v1/images/approvals/{request.id}/reject", headers=world.admin)
    await world.client.post(
        f"/api/v1/images/{image_id}/rules",
        json={"name": "anything", "kind": "regex", "pattern": ".*"},
        headers=world.admin,
    )
    await world.monitor.run_once(force=True)
    assert [r.status for r in (await world.requests()).values()] == ["rejected"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "r", "kind": "range", "pattern": ">=latest"}, "plain version"),
        ({"name": "r", "kind": "regex", "pattern": "("}, "regular expression"),
        ({"name": "r", "kind": "patch", "pattern": "7.2"}, "takes no pattern"),
        ({"name": "r", "kind": "range"}, "needs a pattern"),
    ],
)
async def test_a_bad_rule_is_refused_with_the_reason(
    world: World, body: dict[str, Any], message: str
) -> None:
    added = await world.client.post(
        "/api/v1/images", json={"image_name": "redis"}, headers=world.admin
    )
    response = await world.client.post(
        f"/api/v1/images/{added.json()['id']}/rules", json=body, headers=world.admin
    )
    assert response.status_code == 422
    assert message in response.json()["detail"]
