"""The monitor against a real OCI registry: Debian's docker-registry on loopback, htpasswd auth."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.config import Settings
from tests.factories import add_image, make_settings
from tests.integration.real_registry import RealRegistry

pytestmark = pytest.mark.registry


async def test_the_monitor_discovers_a_multiarch_index_pushed_to_a_real_registry(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
    database_url: str,
) -> None:
    # One repository per database run: the registry outlives a single test.
    repository = "fleet/" + ("app-pg" if database_url.startswith("postgresql") else "app-sqlite")
    namespace, name = repository.split("/")
    real_registry.push_multiarch(repository, "1.0.0", created=datetime(2025, 9, 1, tzinfo=UTC))
    newest = real_registry.push_multiarch(
        repository, "1.1.0", created=datetime(2025, 10, 17, 10, 30, tzinfo=UTC)
    )
    await add_image(
        sessionmaker,
        name,
        namespace=namespace,
        registry_host=real_registry.host,
        watch_for_updates=True,
    )
    configured = make_settings(
        settings.database_url, registries={real_registry.host: real_registry.credentials()}
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        summary = await app.state.monitor.run_once()
    assert summary.errors == 0, [r.error for r in summary.results]

    async with sessionmaker() as session:
        [request] = (await session.scalars(select(ApprovalRequest))).all()
    assert request.tag_name == "1.1.0"
    assert request.digest == newest.digest
    assert request.metadata_["architectures"] == ["amd64", "arm64"]
    assert request.metadata_["platforms"] == newest.platform_digests
    assert request.metadata_["last_updated"] == "2025-10-17T10:30:00+00:00"
    # A real registry's /v2/ answers the anonymous probe with 401: credentials were needed.
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{real_registry.url}/v2/")
    assert anonymous.status_code == 401


class Counting(httpx.AsyncBaseTransport):
    """The real network, every request noted (method, path) on its way out."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def heads(self) -> set[str]:
        return {path.rsplit("/", 1)[-1] for method, path in self.sent if method == "HEAD"}


async def test_a_repushed_tracked_tag_is_found_while_untracked_tags_cost_no_head(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
    database_url: str,
) -> None:
    repository = "fleet/" + ("cost-pg" if database_url.startswith("postgresql") else "cost-sqlite")
    namespace, name = repository.split("/")
    for minor in range(4):
        real_registry.push_multiarch(
            repository, f"1.{minor}.0", created=datetime(2025, 9, 1 + minor, tzinfo=UTC)
        )
    await add_image(
        sessionmaker,
        name,
        namespace=namespace,
        registry_host=real_registry.host,
        watch_for_updates=True,
        watch_tags=["1.1.0"],
    )
    configured = make_settings(
        settings.database_url, registries={real_registry.host: real_registry.credentials()}
    )
    counting = Counting()
    app = create_app(configured, registry_transport=counting)
    async with app.router.lifespan_context(app):
        first = await app.state.monitor.run_once()
        assert first.errors == 0, [r.error for r in first.results]
        # 1.3.0 is the newest (requested), 1.1.0 watched; 1.0.0 and 1.2.0 are untracked.
        repushed = real_registry.push_multiarch(
            repository, "1.1.0", created=datetime(2025, 10, 1, tzinfo=UTC)
        )
        real_registry.push_multiarch(repository, "1.2.0", created=datetime(2025, 10, 2, tzinfo=UTC))
        counting.sent.clear()
        summary = await app.state.monitor.run_once(force=True)

    assert summary.errors == 0, [r.error for r in summary.results]
    assert summary.results[0].requests_created == ["1.1.0"]
    assert counting.heads() == {"1.1.0", "1.3.0"}
    async with sessionmaker() as session:
        request = await session.scalar(
            select(ApprovalRequest).where(ApprovalRequest.tag_name == "1.1.0")
        )
    assert request is not None
    assert request.digest == repushed.digest
    assert request.metadata_["reason"] == "digest_changed"
