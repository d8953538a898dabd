"""The monitor on Quay, Harbor and GitHub Packages (each a loopback fake, served in-process):
requests carry the registry's push date as ``last_updated`` and Harbor's scan as evidence. Both
databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import make_settings

QUAY, HARBOR, GHCR = "127.0.0.1:5091", "127.0.0.1:5092", "127.0.0.1:5093"
GITHUB_API = "http://127.0.0.1:5094"


@dataclass
class World:
    fake: FakeRegistry
    monitor: ImageMonitor
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]

    async def add_image(self, name: str, namespace: str, registry: str) -> int:
        body = {"image_name": name, "namespace": namespace, "registry": registry,
                "watch_for_updates": True}  # fmt: skip
        response = await self.client.post("/api/v1/images", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def requests(self, image_id: int) -> list[ApprovalRequest]:
        async with self.sessionmaker() as session:
            query = select(ApprovalRequest).where(ApprovalRequest.image_id == image_id)
            return list((await session.scalars(query)).all())


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock, pull_limit=None)
    pat = fake.native.add_api_token("octocat")
    fake.add_user("octocat", pat)
    configured = make_settings(
        settings.database_url,
        registries={
            QUAY: RegistryCredentials(url=f"http://{QUAY}", kind="quay"),
            HARBOR: RegistryCredentials(url=f"http://{HARBOR}", kind="harbor"),
            GHCR: RegistryCredentials(url=f"http://{GHCR}", kind="github", api_url=GITHUB_API,
                                      username="octocat", token=SecretStr(pat)),
        },
    )  # fmt: skip
    app = create_app(configured, registry_transport=fake.transport())
    monitor: ImageMonitor = app.state.monitor
    monitor.state = RegistryState(clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, monitor, client, sessionmaker, tokens.headers("admin"))


@pytest.mark.parametrize("registry", [QUAY, GHCR])
async def test_quay_and_github_requests_carry_the_push_date_not_the_build_date(
    world: World, registry: str
) -> None:
    world.fake.add_repository("acme/app", 40, platforms=["linux/amd64", "linux/arm64/v8"])
    image_id = await world.add_image("app", "acme", registry)
    summary = await world.monitor.run_once()
    assert summary.errors == 0, summary.results

    [request] = await world.requests(image_id)
    newest = world.fake.model.repository("acme/app").newest_first()[0]
    assert request.tag_name == newest.name
    assert request.digest == newest.artifact.digest
    assert request.metadata_["architectures"] == ["amd64", "arm64"]
    # The push, to the second; the image's own created is five minutes earlier.
    assert (
        request.metadata_["last_updated"] == newest.last_updated.replace(microsecond=0).isoformat()
    )
    # Quay: 40 tags in one page; GitHub: 40 indexes and their 80 platform manifests in two.
    listed, pages = ("quay_tags", 1) if registry == QUAY else ("github_versions", 2)
    assert world.fake.stats.count(listed, status=200) == pages
    assert world.fake.stats.count("oci_tags") == 0
    # Every tag is dated by the listing: the first scan resolves only the newest (its index)
    # and its two platform manifests (its sizes), not the 40 tags one by one.
    assert len({r.path for r in world.fake.stats.matching("oci_manifest", "GET")}) == 3


async def test_harbor_requests_keep_the_scan_overview_as_evidence(world: World) -> None:
    world.fake.add_repository("proj/app", 30)
    image_id = await world.add_image("app", "proj", HARBOR)
    summary = await world.monitor.run_once()
    assert summary.errors == 0, summary.results

    [request] = await world.requests(image_id)
    newest = world.fake.model.repository("proj/app").newest_first()[0]
    assert request.tag_name == newest.name
    assert request.metadata_["architectures"] == ["amd64", "arm/v7", "arm64"]
    evidence = request.metadata_["registry_evidence"]
    assert evidence["registry"] == "harbor"
    [report] = evidence["scan_overview"].values()
    assert report["scan_status"] == "Success"
    assert world.fake.stats.count("harbor_artifacts", status=200) == 1
    assert world.fake.stats.count("oci_tags") == 0
