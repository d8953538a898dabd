"""What an OCI scan costs, counted by the fake registry, on both databases: a rescan asks only
about tracked tags and new tags the filters want; each digest is resolved once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import ImageTag
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_records import TagRecord, version_tag
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import make_settings

REPO = "acme/app"
HOST = "ghcr.fake"


@dataclass
class World:
    fake: FakeRegistry
    clock: FakeClock
    monitor: ImageMonitor
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]

    async def add_image(self, **extra: Any) -> int:
        body = {"image_name": "app", "namespace": "acme", "registry": HOST,
                "watch_for_updates": True, **extra}  # fmt: skip
        response = await self.client.post("/api/v1/images", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def count(self, kind: str, method: str | None = None) -> int:
        return self.fake.stats.count(kind, method, repository=REPO)

    async def requests(self) -> list[ApprovalRequest]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(ApprovalRequest).order_by(ApprovalRequest.id))
            return list(rows.all())


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock, pull_limit=None)
    configured = make_settings(
        settings.database_url, registries={HOST: RegistryCredentials(url=f"http://{HOST}")}
    )
    app = create_app(configured, registry_transport=fake.transport())
    monitor: ImageMonitor = app.state.monitor
    monitor.state = RegistryState(clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, clock, monitor, client, sessionmaker, tokens.headers("admin"))


async def track(world: World, image_id: int, *, activated: str, deployed: str) -> None:
    """An image_tags row for ``activated`` and a device whose target is ``deployed``."""
    async with world.sessionmaker() as session, session.begin():
        session.add(ImageTag(image_id=image_id, tag=activated, architecture="amd64"))
        device = Device(uuid=str(uuid.uuid4()), name="edge-1", architecture="amd64",
                        key_hash=uuid.uuid4().hex, key_prefix="tw_dev")  # fmt: skip
        session.add(device)
        await session.flush()
        session.add(DeviceApp(device_id=device.id, app_name="app", image_id=image_id,
                              image=f"{HOST}/{REPO}", tag=deployed))  # fmt: skip


async def test_rescan_of_an_unchanged_repository_heads_only_its_tracked_tags(
    world: World,
) -> None:
    world.fake.add_repository(REPO, 1000)
    names = [version_tag(i) for i in range(1000)]
    image_id = await world.add_image(watch_tags=[names[10], names[20]])
    first = await world.monitor.run_once()
    assert first.errors == 0, [r.error for r in first.results]
    [requested] = await world.requests()  # the newest: tracked from now on
    await track(world, image_id, activated=names[30], deployed=names[40])
    world.fake.stats.reset()

    rescan = await world.monitor.run_once(force=True)

    assert (rescan.errors, rescan.requests_created) == (0, 0)
    pages = world.count("oci_tags")
    assert pages == 10  # 100 names a page
    heads = {r.path.rsplit("/", 1)[-1] for r in world.fake.stats.matching("oci_manifest", "HEAD")}
    assert heads == {requested.tag_name, names[10], names[20], names[30], names[40]}
    assert world.count("oci_manifest", "HEAD") == 5
    assert world.count("oci_manifest", "GET") == world.count("oci_blob") == 0


async def test_a_repushed_tracked_tag_is_found_and_an_untracked_one_costs_nothing(
    world: World,
) -> None:
    world.fake.add_repository(REPO, 6)
    image_id = await world.add_image(watch_tags=["1.0.1"])
    await world.monitor.run_once()
    world.clock.advance(60)
    world.fake.repush_tag(REPO, "1.0.1")  # watched
    world.fake.repush_tag(REPO, "1.0.2")  # neither watched nor asked about
    world.fake.stats.reset()

    summary = await world.monitor.run_once(force=True)

    assert summary.results[0].requests_created == ["1.0.1"]
    heads = {r.path.rsplit("/", 1)[-1] for r in world.fake.stats.matching("oci_manifest", "HEAD")}
    assert "1.0.2" not in heads
    async with world.sessionmaker() as session:
        repushed = await session.scalar(
            select(DiscoveredTag.digest).where(
                DiscoveredTag.image_id == image_id, DiscoveredTag.tag == "1.0.1"
            )
        )
    assert repushed == world.fake.model.repository(REPO).tags["1.0.1"].artifact.digest


async def test_filtered_out_tags_cost_no_head_even_on_the_first_scan(world: World) -> None:
    world.fake.add_repository(REPO, 20)
    image_id = await world.add_image(tag_include=r"^1\.1\.")

    await world.monitor.run_once()

    heads = world.fake.stats.matching("oci_manifest", "HEAD")
    assert len(heads) == 10  # 1.1.0 … 1.1.9
    async with world.sessionmaker() as session:
        seen = dict((await session.execute(
            select(DiscoveredTag.tag, DiscoveredTag.digest).where(
                DiscoveredTag.image_id == image_id)
        )).all())  # fmt: skip
    # Every listed tag is recorded as seen; the refused ones by name only.
    assert len(seen) == 20
    assert seen["1.0.3"] is None
    assert seen["1.1.3"] is not None


async def test_first_scan_of_many_tags_on_two_digests_resolves_each_digest_once(
    world: World,
) -> None:
    world.fake.add_repository(REPO, 2)  # 1.0.0 and 1.0.1, two digests of two platforms
    for i in range(52):
        world.fake.alias_tag(REPO, f"old-{i}", "1.0.0")
        world.fake.alias_tag(REPO, f"new-{i}", "1.0.1")
    await world.add_image()
    summary = await world.monitor.run_once()

    assert summary.errors == 0, [r.error for r in summary.results]

    [request] = await world.requests()
    assert request.digest == world.fake.model.repository(REPO).tags["1.0.1"].artifact.digest
    assert world.count("oci_manifest", "HEAD") == 106
    # Per digest: its index, its two platform manifests (one to date it, both for its sizes)
    # and one config; nothing read twice.
    gets = [r.path for r in world.fake.stats.matching("oci_manifest", "GET")]
    assert len(gets) == len(set(gets)) <= 2 * 3
    assert world.count("oci_blob") <= 2


async def test_a_new_tag_on_a_recorded_digest_is_not_resolved_again(world: World) -> None:
    world.fake.add_repository(REPO, 3)
    await world.add_image()
    await world.monitor.run_once()
    world.fake.alias_tag(REPO, "stable", "1.0.1")
    world.fake.stats.reset()

    await world.monitor.run_once(force=True)

    assert world.count("oci_manifest", "HEAD") == 2  # the new tag, and the requested one
    # No resolution (no GET by tag, no config): what is read by digest is the size evidence
    # of the request the new tag gets.
    gets = [r.path.rsplit("/", 1)[-1] for r in world.fake.stats.matching("oci_manifest", "GET")]
    assert gets
    assert all(g.startswith("sha256:") for g in gets)
    assert world.count("oci_blob") == 0
    async with world.sessionmaker() as session:
        stable = await session.scalar(select(DiscoveredTag).where(DiscoveredTag.tag == "stable"))
    assert stable is not None
    assert set(stable.architectures) == {"amd64", "arm64", "arm/v7"}


async def test_a_tag_seen_by_name_only_is_watched_from_when_it_is_named(world: World) -> None:
    world.fake.add_repository(REPO, 3, with_latest=True)
    image_id = await world.add_image(tag_exclude="^latest$")
    await world.monitor.run_once()
    patched = await world.client.patch(
        f"/api/v1/images/{image_id}", json={"watch_tags": ["latest"]}, headers=world.admin
    )
    assert patched.status_code == 200
    await world.monitor.run_once(force=True)  # latest's digest recorded: no request yet
    assert [r.tag_name for r in await world.requests()] == ["1.0.2"]
    world.clock.advance(60)
    world.fake.repush_tag(REPO, "latest")

    summary = await world.monitor.run_once(force=True)

    assert summary.results[0].requests_created == ["latest"]


async def test_a_digest_only_a_request_still_holds_is_not_resolved_again(world: World) -> None:
    world.fake.add_repository(REPO, 2)
    await world.add_image()
    await world.monitor.run_once()  # 1.0.1 requested
    repo = world.fake.model.repository(REPO)
    before = repo.tags["1.0.1"]
    world.clock.advance(60)
    world.fake.repush_tag(REPO, "1.0.1")
    await world.monitor.run_once(force=True)  # its discovered row now holds the new digest
    # A new tag on the old digest, which only the first request still records.
    repo.tags["1.0.1-pinned"] = TagRecord(
        "1.0.1-pinned", before.artifact, world.fake.model.now(), 0
    )
    world.fake.stats.reset()

    await world.monitor.run_once(force=True)

    gets = [r.path.rsplit("/", 1)[-1] for r in world.fake.stats.matching("oci_manifest", "GET")]
    assert "1.0.1-pinned" not in gets  # not resolved: only the new request's sizes are read
    assert world.count("oci_blob") == 0
    async with world.sessionmaker() as session:
        pinned = await session.scalar(
            select(DiscoveredTag).where(DiscoveredTag.tag == "1.0.1-pinned")
        )
    assert pinned is not None
    assert pinned.digest == before.artifact.digest
    first = next(r for r in await world.requests() if r.digest == before.artifact.digest)
    assert pinned.platforms == first.metadata_["platforms"]
