"""The image monitor against the fake registry, on both databases (seed 001)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.clock import utc
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.monitor import record, scan, service
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.notify.models import NotificationChannel, NotificationEvent
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import add_image, make_settings

HUB = "http://hub.fake"


@dataclass
class World:
    fake: FakeRegistry
    clock: FakeClock
    monitor: ImageMonitor
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]

    async def add_image(self, name: str, namespace: str = "library", **extra: Any) -> int:
        body = {"image_name": name, "namespace": namespace, "watch_for_updates": True, **extra}
        response = await self.client.post("/api/v1/images", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def requests(self, image_id: int | None = None) -> list[ApprovalRequest]:
        async with self.sessionmaker() as session:
            query = select(ApprovalRequest).order_by(ApprovalRequest.id)
            if image_id is not None:
                query = query.where(ApprovalRequest.image_id == image_id)
            return list((await session.scalars(query)).all())

    async def image(self, image_id: int) -> Image:
        async with self.sessionmaker() as session:
            image = await session.get(Image, image_id)
            assert image is not None
            return image


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    configured = make_settings(
        settings.database_url,
        dockerhub_api_url=HUB,
        registries={"ghcr.fake": RegistryCredentials(url="http://ghcr.fake")},
    )
    app = create_app(configured, registry_transport=fake.transport())
    monitor: ImageMonitor = app.state.monitor
    monitor.state = RegistryState(clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, clock, monitor, client, sessionmaker, tokens.headers("admin"))


async def test_first_scan_requests_only_the_most_recent_tag_and_records_the_rest(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.fake.add_repository("library/redis", 30, platforms=["linux/amd64", "linux/arm64/v8"])
    image_id = await world.add_image("redis")
    caplog.set_level(logging.INFO, logger="tagwarden.monitor")

    summary = await world.monitor.run_once()

    assert (summary.images_checked, summary.requests_created) == (1, 1)
    [request] = await world.requests(image_id)
    newest = world.fake.model.repository("library/redis").newest_first()[0]
    assert request.tag_name == newest.name
    assert request.status == "pending"
    meta = request.metadata_
    assert meta["digest"] == newest.artifact.digest == request.digest
    assert meta["architectures"] == ["amd64", "arm64"]
    assert set(meta["platforms"]) == {"amd64", "arm64"}
    assert meta["auto_detected"] is True
    assert meta["source"] == "image_monitor"
    assert meta["last_updated"].startswith(newest.last_updated.isoformat()[:19])
    assert "first_seen" in meta
    assert meta["also_tagged"] == []
    async with world.sessionmaker() as session:
        seen = await session.scalar(select(func.count()).select_from(DiscoveredTag))
    assert seen == 30
    assert world.fake.stats.count("hub_tags") == 1
    image = await world.image(image_id)
    assert image.last_checked_at is not None
    assert image.next_check_at is not None
    assert image.last_error is None

    lines = [r.getMessage() for r in caplog.records]
    for expected in (
        "[ImageMonitor] Checking for new image tags...",
        "[ImageMonitor] Monitoring 1 images",
        f"[ImageMonitor] Checking redis at {HUB}/v2/repositories/library/redis/tags/",
        "[ImageMonitor] Found 30 tags for redis",
        "[ImageMonitor] Found 30 new tags for redis",
        f"[ImageMonitor] Creating approval request for most recent: redis:{newest.name}",
        f"[ImageMonitor] ✅ Created approval request for redis:{newest.name}",
        "[ImageMonitor] Check complete",
    ):
        assert expected in lines


async def test_rescan_of_an_unchanged_repository_costs_one_request_and_asks_nothing(
    world: World,
) -> None:
    world.fake.add_repository("library/redis", 250)
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    first = world.fake.stats.count("hub_tags")
    assert first == 3  # 250 tags, 100 a page

    checked_before = (await world.image(image_id)).last_checked_at
    async with world.sessionmaker() as session, session.begin():
        image = await session.get(Image, image_id)
        assert image is not None
        image.last_error = "an old failure"

    summary = await world.monitor.run_once(force=True)
    assert summary.requests_created == 0
    assert world.fake.stats.count("hub_tags") == first + 1
    assert len(await world.requests(image_id)) == 1
    # Nothing new: the schedule alone is written (batched with other such checks).
    after = await world.image(image_id)
    assert checked_before is not None
    assert after.last_checked_at is not None
    assert after.last_checked_at > checked_before
    assert after.last_error is None


@pytest.mark.parametrize(("policy", "expected"), [("latest", 1), ("all", 3)])
async def test_new_tags_after_the_first_scan_follow_the_image_policy(
    world: World, policy: str, expected: int
) -> None:
    world.fake.add_repository("library/nginx", 5)
    image_id = await world.add_image("nginx", tag_policy=policy)
    await world.monitor.run_once()
    for name in ("1.27.0", "1.27.1", "1.27.2"):
        world.clock.advance(60)
        world.fake.push_tag("library/nginx", name)

    summary = await world.monitor.run_once(force=True)

    assert summary.requests_created == expected
    created = [r.tag_name for r in await world.requests(image_id)][1:]
    assert created == ["1.27.2", "1.27.1", "1.27.0"][:expected]


async def test_include_and_exclude_filters_decide_which_tags_are_asked_for(world: World) -> None:
    world.fake.add_repository("library/postgres", 2)
    image_id = await world.add_image(
        "postgres", tag_policy="all", tag_include=r"^\d+\.\d+$", tag_exclude=r"^9\."
    )
    await world.monitor.run_once()
    for name in ("17.1", "17.2-rc1", "9.6", "17.2"):
        world.clock.advance(60)
        world.fake.push_tag("library/postgres", name)
    await world.monitor.run_once(force=True)
    # The generated first tags (1.x.y) never match the filter, so the first scan asked nothing.
    assert [r.tag_name for r in await world.requests(image_id)] == ["17.2", "17.1"]


async def test_a_repushed_tag_gets_its_own_request_naming_the_changed_platform(
    world: World,
) -> None:
    world.fake.add_repository("library/redis", 3, platforms=["linux/amd64", "linux/arm64/v8"])
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    [first] = await world.requests(image_id)
    await world.client.post(f"/api/v1/images/approvals/{first.id}/approve", headers=world.admin)
    world.clock.advance(60)
    world.fake.repush_tag("library/redis", first.tag_name or "", only_platform="linux/arm64/v8")

    await world.monitor.run_once(force=True)

    requests = await world.requests(image_id)
    assert len(requests) == 2
    again = requests[1]
    assert again.tag_name == first.tag_name
    assert again.digest != first.digest
    assert again.metadata_["reason"] == "digest_changed"
    assert again.metadata_["old_digest"] == first.digest
    assert again.metadata_["changed_platforms"] == ["arm64"]


async def test_a_decided_tag_and_digest_is_never_asked_for_again(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    [first] = await world.requests(image_id)
    rejected = await world.client.post(
        f"/api/v1/images/approvals/{first.id}/reject", json={"notes": "no"}, headers=world.admin
    )
    assert rejected.status_code == 200
    async with world.sessionmaker() as session, session.begin():
        # Forget what was seen: the request table alone must prevent asking again.
        for row in (await session.scalars(select(DiscoveredTag))).all():
            await session.delete(row)
    await world.monitor.run_once(force=True)
    assert len(await world.requests(image_id)) == 1


async def test_missing_and_malformed_images_are_marked_and_the_scan_goes_on(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    world.fake.add_repository("library/nginx", 3)
    world.fake.add_repository("grafana/grafana", 3)
    gone = await world.add_image("gone")
    broken = await world.add_image("nginx")
    healthy = await world.add_image("grafana", namespace="grafana")
    world.fake.faults.not_found("library/gone")
    world.fake.faults.malform("/v2/repositories/library/nginx/*")

    summary = await world.monitor.run_once()

    assert summary.images_checked == 3
    assert summary.errors == 2
    assert "not found" in ((await world.image(gone)).last_error or "")
    assert (await world.image(broken)).last_error
    assert (await world.image(healthy)).last_error is None
    assert len(await world.requests(healthy)) == 1
    assert (await world.image(gone)).next_check_at is not None


async def test_a_burst_of_5xx_is_retried_and_the_scan_recovers(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    world.fake.faults.fail_next(2, status=503, kind="hub_tags")
    summary = await world.monitor.run_once()
    assert summary.errors == 0
    assert len(await world.requests(image_id)) == 1
    assert world.fake.stats.count("hub_tags", status=503) == 2


async def test_429_with_retry_after_is_waited_out_before_the_next_request(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    world.fake.faults.force_429(30, kind="hub_tags")
    summary = await world.monitor.run_once()
    assert summary.errors == 0
    assert len(await world.requests(image_id)) == 1
    refused = world.fake.stats.matching("hub_tags", status=429)
    served = world.fake.stats.matching("hub_tags", status=200)
    assert len(refused) == 1
    assert served[0].at >= refused[0].at + 30


async def test_an_oci_registry_image_is_discovered_with_platforms_and_created_time(
    world: World,
) -> None:
    world.fake.add_repository("acme/app", 4, platforms=["linux/amd64", "linux/arm/v7"])
    image_id = await world.add_image("app", namespace="acme", registry="ghcr.fake")
    summary = await world.monitor.run_once()
    assert summary.errors == 0, summary.results
    [request] = await world.requests(image_id)
    newest = world.fake.model.repository("acme/app").newest_first()[0]
    assert request.tag_name == newest.name
    assert request.digest == newest.artifact.digest
    assert request.metadata_["architectures"] == ["amd64", "arm/v7"]
    assert request.metadata_["last_updated"] is not None


async def test_control_endpoints_answer_in_the_seeds_shapes(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    status = await world.client.get("/api/v1/images/monitor/status", headers=world.admin)
    assert status.status_code == 200
    assert {"running", "checkIntervalMinutes", "nextCheckIn"} <= set(status.json())
    assert status.json()["checkIntervalMinutes"] == 60

    checked = await world.client.post(f"/api/v1/images/{image_id}/check", headers=world.admin)
    assert checked.status_code == 200
    assert checked.json()["message"] == "Image check triggered successfully"
    assert checked.json()["image_name"] == "redis"
    assert checked.json()["result"]["requests_created"] == [
        world.fake.model.repository("library/redis").newest_first()[0].name
    ]

    triggered = await world.client.post("/api/v1/images/monitor/trigger", headers=world.admin)
    assert triggered.status_code == 200
    assert triggered.json()["message"] == "Manual check triggered successfully"
    assert triggered.json()["images_checked"] == 1
    assert (
        await world.client.post("/api/v1/images/999/check", headers=world.admin)
    ).status_code == 404


async def test_two_monitors_racing_check_each_image_once_and_create_each_request_once(
    world: World, settings: Settings, database_url: str
) -> None:
    for i in range(6):
        world.fake.add_repository(f"library/img{i}", 3)
        await world.add_image(f"img{i}")
    other = ImageMonitor(
        world.monitor.settings, world.sessionmaker, world.monitor.http, state=world.monitor.state
    )
    first, second = await asyncio.gather(world.monitor.run_once(), other.run_once())
    if database_url.startswith("postgresql"):
        # SKIP LOCKED hands each due image to exactly one replica.
        assert first.images_checked + second.images_checked == 6
        assert world.fake.stats.count("hub_tags") == 6
    requests = await world.requests()
    assert len(requests) == 6
    assert len({(r.image_id, r.tag_name) for r in requests}) == 6


@pytest.mark.postgres_only
async def test_a_claim_skips_the_images_another_replica_holds(world: World) -> None:
    ids = []
    for i in range(5):
        world.fake.add_repository(f"library/img{i}", 3)
        ids.append(await world.add_image(f"img{i}"))
    async with world.sessionmaker() as holder, holder.begin():
        # Another replica is in the middle of claiming the first two.
        await holder.execute(select(Image.id).where(Image.id.in_(ids[:2])).with_for_update())
        # Skipped, not waited for: a claim that blocked on the held rows would time out here.
        claimed, deferred = await asyncio.wait_for(world.monitor.claim(), timeout=10)
        assert [t.id for t in claimed] == ids[2:]
        assert deferred == 0
    # Released, they are still due: the replica that held them had not claimed them after all.
    again, _ = await world.monitor.claim()
    assert [t.id for t in again] == ids[:2]


async def test_the_monitor_starts_with_the_server_and_runs_at_once(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakeRegistry()
    fake.add_repository("library/redis", 3)
    await add_image(sessionmaker, "redis", watch_for_updates=True)
    configured = make_settings(settings.database_url, monitor_enabled=True, dockerhub_api_url=HUB)
    app = create_app(configured, registry_transport=fake.transport())
    async with app.router.lifespan_context(app):
        for _ in range(200):  # until the first run has committed its request and finished
            async with sessionmaker() as session:
                found = await session.scalar(select(func.count()).select_from(ApprovalRequest))
            if found and app.state.monitor.last_run is not None:
                break
            await asyncio.sleep(0.05)
        status = app.state.monitor.status()
        assert status["running"] is True
        assert status["lastRun"]["imagesChecked"] == 1
        assert 0 < status["nextCheckIn"] <= 60_000
    assert found == 1
    assert app.state.monitor.running is False


async def test_a_spent_registry_budget_goes_to_the_most_overdue_images_first(
    world: World,
) -> None:
    ids = []
    for i in range(5):
        world.fake.add_repository(f"library/img{i}", 2)
        ids.append(await world.add_image(f"img{i}"))
    now = utc(world.monitor.clock)
    async with world.sessionmaker() as session, session.begin():
        for age, image_id in enumerate(ids):
            image = await session.get(Image, image_id)
            assert image is not None
            image.next_check_at = now - timedelta(minutes=10 * (age + 1))  # img4 most overdue
    # The Hub said two requests are left in this window.
    world.monitor.state.limits.for_host("hub.fake").observe(
        httpx.Headers(
            {
                "X-RateLimit-Limit": "180",
                "X-RateLimit-Remaining": "2",
                "X-RateLimit-Reset": str(int(world.clock.now()) + 60),
            }
        )
    )

    summary = await world.monitor.run_once()

    assert (summary.images_checked, summary.deferred_for_budget) == (2, 3)
    assert {r.image_id for r in summary.results} == {ids[4], ids[3]}
    for image_id in ids[:3]:  # still due, untouched, first in line next time
        image = await world.image(image_id)
        assert image.last_checked_at is None
        assert image.next_check_at is not None
        assert image.next_check_at <= now
    status = world.monitor.status()
    assert status["lastRun"]["deferredForBudget"] == 3
    assert "hub.fake" in status["registryBudget"]
    metrics = await world.client.get("/metrics", headers=world.admin)
    assert 'tagwarden_registry_budget_remaining{host="hub.fake"}' in metrics.text


async def test_a_repushed_tag_nobody_asked_about_is_recorded_but_not_requested(
    world: World,
) -> None:
    world.fake.add_repository("library/redis", 4)
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    [first] = await world.requests(image_id)
    older = [t.name for t in world.fake.model.repository("library/redis").newest_first()[1:]]
    for name in older:  # an upstream rebuild of every old tag
        world.clock.advance(60)
        world.fake.repush_tag("library/redis", name)

    summary = await world.monitor.run_once(force=True)

    assert summary.requests_created == 0
    assert len(await world.requests(image_id)) == 1
    async with world.sessionmaker() as session:
        digests = dict(
            (await session.execute(select(DiscoveredTag.tag, DiscoveredTag.digest))).all()
        )
    repo = world.fake.model.repository("library/redis")
    assert all(digests[name] == repo.tags[name].artifact.digest for name in older)

    world.clock.advance(60)
    world.fake.repush_tag("library/redis", first.tag_name or "")
    await world.monitor.run_once(force=True)
    assert [r.metadata_.get("reason") for r in await world.requests(image_id)] == [
        None,
        "digest_changed",
    ]


async def test_a_repush_while_pending_supersedes_the_stale_request(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    [stale] = await world.requests(image_id)
    world.clock.advance(60)
    world.fake.repush_tag("library/redis", stale.tag_name or "")

    await world.monitor.run_once(force=True)

    old, new = await world.requests(image_id)
    assert (old.status, old.reviewed_by) == ("rejected", "image_monitor")
    assert old.notes == f"superseded: the tag was re-pushed as {new.digest}"
    assert (new.status, new.tag_name, new.metadata_["old_digest"]) == (
        "pending",
        stale.tag_name,
        stale.digest,
    )
    audit = await world.client.get("/api/v1/audit?action=approval.superseded", headers=world.admin)
    assert [e["entity_id"] for e in audit.json()["items"]] == [str(old.id)]


async def test_a_scan_larger_than_a_chunk_and_a_batch_checks_each_image_once_in_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small stages, so a short scan crosses several known-tag chunks and write batches.
    monkeypatch.setattr(scan, "KNOWN_CHUNK", 3)
    monkeypatch.setattr(scan, "WRITE_BATCH", 2)
    batches: list[int] = []
    write = record.record_outcomes

    async def counted(session: AsyncSession, outcomes: Any, **kw: Any) -> Any:
        batches.append(len(outcomes))
        return await write(session, outcomes, **kw)

    monkeypatch.setattr(record, "record_outcomes", counted)
    ids = []
    for i in range(11):
        world.fake.add_repository(f"library/img{i}", 4)
        ids.append(await world.add_image(f"img{i}"))

    summary = await world.monitor.run_once()

    assert [r.image_id for r in summary.results] == ids
    assert all(r.error is None and len(r.requests_created) == 1 for r in summary.results)
    assert sum(batches) == 11
    assert max(batches) <= 2
    assert world.fake.stats.count("hub_tags") == 11
    async with world.sessionmaker() as session:
        seen = dict(
            (
                await session.execute(
                    select(DiscoveredTag.image_id, func.count()).group_by(DiscoveredTag.image_id)
                )
            ).all()
        )
    assert seen == dict.fromkeys(ids, 4)
    assert sorted(r.image_id for r in await world.requests()) == ids


async def checked_outcomes(world: World, image_ids: list[int]) -> list[record.Outcome]:
    """What checks of these images would write, observed but not yet written."""
    async with world.sessionmaker() as session:
        targets = [service.Target.of(await session.get_one(Image, i)) for i in image_ids]
        known = await service.load_known(session, image_ids)
    return [await world.monitor.observe(t, known.get(t.id, {})) for t in targets]


async def test_one_batch_writes_every_kind_of_outcome_as_each_alone_would(world: World) -> None:
    for name in ("redis", "nginx", "grafana", "mysql"):
        world.fake.add_repository(f"library/{name}", 3)
    repushed = await world.add_image("redis")
    unchanged = await world.add_image("nginx")
    await world.monitor.run_once()
    [stale] = await world.requests(repushed)
    world.clock.advance(60)
    world.fake.repush_tag("library/redis", stale.tag_name or "")
    new = await world.add_image("grafana")
    gone = await world.add_image("gone")
    world.fake.faults.not_found("library/gone")
    deleted = await world.add_image("mysql")
    outcomes = await checked_outcomes(world, [repushed, unchanged, new, gone, deleted])
    async with world.sessionmaker() as session, session.begin():
        await session.delete(await session.get_one(Image, deleted))

    results = await world.monitor.write(outcomes)

    assert [r.image_id for r in results] == [repushed, unchanged, new, gone, deleted]
    by_id = {r.image_id: r for r in results}
    assert by_id[repushed].requests_created == [stale.tag_name]
    old, fresh = await world.requests(repushed)
    assert (old.status, fresh.metadata_["reason"]) == ("rejected", "digest_changed")
    assert (by_id[unchanged].new_tags, by_id[unchanged].requests_created) == (0, [])
    assert len(await world.requests(unchanged)) == 1
    assert (by_id[new].new_tags, len(by_id[new].requests_created)) == (3, 1)
    assert "not found" in (by_id[gone].error or "")
    assert "not found" in ((await world.image(gone)).last_error or "")
    assert by_id[deleted].error == "image no longer exists"
    async with world.sessionmaker() as session:
        rows = dict(
            (
                await session.execute(
                    select(DiscoveredTag.image_id, func.count()).group_by(DiscoveredTag.image_id)
                )
            ).all()
        )
    assert rows == {repushed: 3, unchanged: 3, new: 3}
    audit = await world.client.get("/api/v1/audit?limit=100", headers=world.admin)
    entries = [
        (e["action"], e["entity_id"], e["after"])
        for e in reversed(audit.json()["items"])  # oldest first
        if e["action"] in ("approval.requested", "approval.superseded")
    ]
    [made] = await world.requests(new)
    assert entries[-3:] == [
        # The stale request is closed before its successor is asked for, in the log too.
        ("approval.superseded", str(old.id), {"status": "rejected", "new_digest": fresh.digest}),
        ("approval.requested", str(fresh.id),
         {"image_id": repushed, "tag_name": fresh.tag_name, "digest": fresh.digest}),
        ("approval.requested", str(made.id),
         {"image_id": new, "tag_name": made.tag_name, "digest": made.digest}),
    ]  # fmt: skip
    for image_id in (repushed, unchanged, new, gone):
        image = await world.image(image_id)
        assert image.last_checked_at is not None
        assert image.next_check_at == image.last_checked_at + timedelta(minutes=60)


def poison(monkeypatch: pytest.MonkeyPatch, poisoned: int) -> None:
    """Make every write that includes image ``poisoned`` fail, after all its statements ran."""
    write = record.record_outcomes

    async def failing(session: AsyncSession, outcomes: Any, **kw: Any) -> Any:
        results = await write(session, outcomes, **kw)
        if any(o.target.id == poisoned for o in outcomes):
            raise RuntimeError("disk full")
        return results

    monkeypatch.setattr(record, "record_outcomes", failing)


async def test_a_batch_that_fails_is_written_one_check_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("redis", "nginx", "grafana"):
        world.fake.add_repository(f"library/{name}", 3)
    ids = [await world.add_image(name) for name in ("redis", "nginx", "grafana")]
    poisoned = ids[1]
    poison(monkeypatch, poisoned)
    reported: list[int] = []
    world.monitor.on_result = lambda result: reported.append(result.image_id)
    outcomes = await checked_outcomes(world, ids)
    caplog.set_level(logging.INFO, logger="tagwarden.monitor")

    results = await world.monitor.write(outcomes)

    assert [r.image_id for r in results] == ids
    assert sorted(reported) == sorted(ids)
    assert (results[1].error or "").startswith("recording the check failed (RuntimeError")
    assert [len(r.requests_created) for r in (results[0], results[2])] == [1, 1]
    # The failed check's writes were rolled back whole: nothing of it is half-recorded.
    assert await world.requests(poisoned) == []
    assert (await world.image(poisoned)).last_checked_at is None
    for image_id in (ids[0], ids[2]):
        assert len(await world.requests(image_id)) == 1
        assert (await world.image(image_id)).last_checked_at is not None
    # Said once, after the commit that made it true (not for the rolled-back batch too).
    created = [r.getMessage() for r in caplog.records if "✅" in r.getMessage()]
    assert len(created) == 2


async def test_a_scan_goes_on_past_a_check_that_cannot_be_written_or_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of one (checks that finish apart, as with a real registry's latency) included.
    monkeypatch.setattr(scan, "WRITE_BATCH", 1)
    monkeypatch.setattr(scan, "KNOWN_CHUNK", 2)
    ids = []
    for i in range(6):
        world.fake.add_repository(f"library/img{i}", 3)
        ids.append(await world.add_image(f"img{i}"))
    poison(monkeypatch, ids[0])
    load_known = service.load_known
    reads = 0

    async def flaky(session: AsyncSession, image_ids: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:  # the second chunk: ids[2] and ids[3]
            raise ConnectionError("database went away")
        return await load_known(session, image_ids)

    monkeypatch.setattr(service, "load_known", flaky)

    summary = await world.monitor.run_once()

    errors = {r.image_id: r.error or "" for r in summary.results}
    assert list(errors) == ids
    assert errors[ids[0]].startswith("recording the check failed")
    assert all(errors[i].startswith("reading the known tags failed") for i in ids[2:4])
    # The type of what failed, never the driver's own text (it may quote SQL and values).
    last_error = (await world.image(ids[2])).last_error or ""
    assert "ConnectionError" in last_error
    assert "database went away" not in last_error
    for image_id in (ids[1], ids[4], ids[5]):
        assert errors[image_id] == ""
        assert len(await world.requests(image_id)) == 1
    assert world.fake.stats.count("hub_tags") == 4  # the unread images were not fetched


async def test_a_target_listed_twice_is_checked_once(world: World) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    async with world.sessionmaker() as session:
        target = service.Target.of(await session.get_one(Image, image_id))

    results = await world.monitor.check_many([target, target])

    assert [len(r.requests_created) for r in results] == [1]
    assert world.fake.stats.count("hub_tags") == 1


async def test_a_superseded_request_says_so_in_its_own_event(world: World) -> None:
    async with world.sessionmaker() as session, session.begin():
        session.add(
            NotificationChannel(
                name="ops",
                kind="webhook",
                config={"url": "http://127.0.0.1:9/hook"},
                events=["approval.superseded"],
            )
        )
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    await world.monitor.run_once()
    [stale] = await world.requests(image_id)
    world.clock.advance(60)
    world.fake.repush_tag("library/redis", stale.tag_name or "")

    await world.monitor.run_once(force=True)

    async with world.sessionmaker() as session:
        events = (await session.scalars(select(NotificationEvent))).all()
    assert [(e.event, e.payload["request_id"], e.payload["status"]) for e in events] == [
        ("approval.superseded", stale.id, "rejected")
    ]
