"""Through the monitor, on both databases: what the Hub API says of a tag is kept in the request,
and Hub entries without a top-level digest become requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.manifests import OCI_INDEX, OCI_MANIFEST
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_hub import FAKE_PUSHER
from tagwarden.testing.fake_records import TagRecord
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import make_settings
from tests.integration.test_monitor import World as MonitorWorld

# One in-memory fake answers both (no socket is opened): the Hub API, and Docker Hub's registry.
HUB = "http://127.0.0.1:4010"
HUB_REGISTRY = "http://127.0.0.1:4011"
OCI = "http://127.0.0.1:4012"
CONTRACT = {
    "digest",
    "last_updated",
    "architectures",
    "auto_detected",
    "source",
    "platforms",
    "first_seen",
    "also_tagged",
}


class World(MonitorWorld):
    """test_monitor's world, with what these tests read: a request as the API shows it, and
    the registry HEADs the fake answered."""

    async def shown(self, request_id: int) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/images/approvals/{request_id}", headers=self.admin
        )
        assert response.status_code == 200, response.text
        metadata: dict[str, Any] = response.json()["metadata"]
        return metadata

    def heads(self) -> int:
        return self.fake.stats.count("oci_manifest", "HEAD", status=200)


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    configured = make_settings(
        settings.database_url,
        dockerhub_api_url=HUB,
        dockerhub_registry_url=HUB_REGISTRY,
        registries={"127.0.0.1:4012": RegistryCredentials(url=OCI)},
    )
    app = create_app(configured, registry_transport=fake.transport())
    monitor: ImageMonitor = app.state.monitor
    monitor.state = RegistryState(clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, clock, monitor, client, sessionmaker, tokens.headers("admin"))


def newest(world: World, repository: str) -> TagRecord:
    return world.fake.model.repository(repository).newest_first()[0]


async def test_a_single_arch_tag_without_hub_digest_is_requested_with_its_images_digest(
    world: World,
) -> None:
    world.fake.add_repository(
        "acme/lab", 6, platforms=["linux/amd64"], attestations=False, hub_digests=False
    )
    image_id = await world.add_image("lab", namespace="acme")

    summary = await world.monitor.run_once()

    assert (summary.errors, summary.requests_created) == (0, 1), summary.results
    [request] = await world.requests(image_id)
    record = newest(world, "acme/lab")
    assert request.tag_name == record.name
    assert request.digest == record.artifact.images[0].digest == record.artifact.digest
    meta = await world.shown(request.id)
    assert set(meta) >= CONTRACT
    assert meta["digest"] == request.digest
    assert meta["platforms"] == {"amd64": request.digest}
    assert meta["platform_details"] == {
        "amd64": {"os": "linux", "size": record.artifact.images[0].size}
    }
    assert meta["media_type"] == record.artifact.media_type == OCI_MANIFEST
    assert meta["full_size"] == record.artifact.images[0].size
    assert meta["pushed_by"] == FAKE_PUSHER
    assert world.fake.stats.count("oci") == 0  # images[0].digest needs no registry request
    async with world.sessionmaker() as session:
        recorded = (await session.scalars(select(DiscoveredTag.digest))).all()
    assert len(recorded) == 6
    assert all(recorded)


async def test_a_multi_arch_tag_without_hub_digest_gets_the_registrys_index_digest(
    world: World,
) -> None:
    world.fake.add_repository("library/rust", 30, hub_digests=False)
    image_id = await world.add_image("rust")

    summary = await world.monitor.run_once()

    assert (summary.errors, summary.requests_created) == (0, 1), summary.results
    [request] = await world.requests(image_id)
    record = newest(world, "library/rust")
    assert request.tag_name == record.name
    assert request.digest == record.artifact.digest  # the index, which no Hub entry named
    # One HEAD, for the one tag that became a request; the 29 others are recorded as seen.
    assert world.heads() == 1
    assert world.fake.stats.count("oci_manifest", "GET") == 0
    assert world.fake.stats.count("hub") == 1
    async with world.sessionmaker() as session:
        rows = dict((await session.execute(select(DiscoveredTag.tag, DiscoveredTag.digest))).all())
    assert len(rows) == 30
    assert rows[record.name] == record.artifact.digest
    assert sum(d is None for d in rows.values()) == 29

    meta = await world.shown(request.id)
    assert set(meta) >= CONTRACT
    assert meta["architectures"] == ["amd64", "arm/v7", "arm64"]
    assert meta["platforms"] == {i.spec.key[1]: i.digest for i in record.artifact.images}
    assert meta["platform_details"] == {
        i.spec.key[1]: {"os": "linux", "size": i.size} for i in record.artifact.images
    }
    assert meta["full_size"] == sum(i.size for i in record.artifact.images)
    assert meta["media_type"] == OCI_INDEX
    assert meta["pushed_by"] == FAKE_PUSHER

    # The rescan of the unchanged repository: one Hub API request, no HEAD, nothing asked.
    world.fake.stats.reset()
    again = await world.monitor.run_once(force=True)
    assert (again.errors, again.requests_created) == (0, 0), again.results
    assert world.fake.stats.count() == 1
    assert world.fake.stats.count("hub_tags") == 1


async def test_new_digest_less_tags_cost_one_head_each_that_becomes_a_request(
    world: World,
) -> None:
    world.fake.add_repository("library/rust", 5, hub_digests=False)
    image_id = await world.add_image("rust", tag_policy="all")
    await world.monitor.run_once()
    pushed = []
    for name in ("1.44.0-slim", "1.44.1-slim", "1.45.0-slim"):
        world.clock.advance(60)
        pushed.append(world.fake.push_tag("library/rust", name, hub_digest=False))
    world.fake.stats.reset()

    summary = await world.monitor.run_once(force=True)

    assert (summary.errors, summary.requests_created) == (0, 3), summary.results
    created = {r.tag_name: r.digest for r in (await world.requests(image_id))[1:]}
    assert created == {p.name: p.artifact.digest for p in pushed}
    assert world.heads() == 3
    assert world.fake.stats.count("hub_tags") == 1


async def test_a_digest_less_tag_gone_before_its_head_gives_way_to_the_next(
    world: World,
) -> None:
    world.fake.add_repository("library/rust", 4, hub_digests=False)
    image_id = await world.add_image("rust")
    repo = world.fake.model.repository("library/rust")
    first, second = repo.newest_first()[:2]
    # Listed by the Hub API, yet its manifest is gone from the registry by the time of the HEAD.
    del world.fake.model.manifests[first.artifact.digest]

    summary = await world.monitor.run_once()

    assert (summary.errors, summary.requests_created) == (0, 1), summary.results
    [request] = await world.requests(image_id)
    assert (request.tag_name, request.digest) == (second.name, second.artifact.digest)


async def test_a_registry_refusing_the_head_is_the_images_error_not_a_silent_skip(
    world: World,
) -> None:
    world.fake.add_repository("library/rust", 3, hub_digests=False)
    image_id = await world.add_image("rust")
    world.fake.faults.fail_next(100, status=503, kind="oci_manifest")

    summary = await world.monitor.run_once()

    assert summary.requests_created == 0
    (result,) = summary.results
    assert result.error is not None
    assert "503" in result.error
    assert await world.requests(image_id) == []
    async with world.sessionmaker() as session:
        assert (await session.scalars(select(DiscoveredTag.tag))).all() == []  # asked again

    world.fake.faults.reset()
    retried = await world.monitor.run_once(force=True)
    assert (retried.errors, retried.requests_created) == (0, 1), retried.results


async def test_an_oci_request_keeps_what_the_registry_gave_and_no_pusher(world: World) -> None:
    world.fake.add_repository("acme/app", 3, platforms=["linux/amd64", "linux/arm/v7"])
    image_id = await world.add_image("app", namespace="acme", registry="127.0.0.1:4012")
    summary = await world.monitor.run_once()
    assert summary.errors == 0, summary.results

    [request] = await world.requests(image_id)
    record = newest(world, "acme/app")
    meta = await world.shown(request.id)
    amd64 = next(i for i in record.artifact.images if i.spec.architecture == "amd64")
    assert set(meta) >= CONTRACT
    # os from the index; a size only for the platform whose manifest dated the tag.
    assert meta["platform_details"] == {
        "amd64": {"os": "linux", "size": amd64.size},
        "arm/v7": {"os": "linux"},
    }
    assert meta["media_type"] == OCI_INDEX
    assert "pushed_by" not in meta
    assert "full_size" not in meta
