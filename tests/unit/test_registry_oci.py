"""The OCI client against the fake registry API: Link paging, token flow, HEADs, manifests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from tagwarden.registry import (
    AuthenticationFailed,
    ImageNotFound,
    MalformedResponse,
    OciClient,
    RateLimited,
    RemoteTag,
)
from tagwarden.testing import RegistryHarness, registry_harness


@pytest.fixture
async def h() -> AsyncIterator[RegistryHarness]:
    async with registry_harness() as harness:
        yield harness


async def scan(
    client: OciClient, repo: str, known: dict[str, str | None] | None = None
) -> list[RemoteTag]:
    return [tag async for tag in client.iter_tags(repo, known or {})]


async def test_tag_list_follows_relative_link_pages(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 250)
    names = [n async for n in h.oci(page_size=100).list_tags("org/app")]

    assert names == sorted(h.fake.model.repository("org/app").tags)
    pages = [r for r in h.fake.stats.matching("oci_tags") if r.status == 200]
    assert len(pages) == 3
    assert [parse_qs(p.query).get("last") for p in pages] == [None, ["1.9.9"], ["2.9.9"]]
    assert all(parse_qs(p.query)["n"] == ["100"] for p in pages)


async def test_quay_style_absolute_link_and_hub_style_single_page() -> None:
    async with registry_harness(tag_list_style="quay") as h:
        h.fake.add_repository("coreos/etcd", 120)
        names = [n async for n in h.oci(page_size=50).list_tags("coreos/etcd")]
        assert len(names) == 120
        assert h.fake.stats.count("oci_tags", status=200) == 3
    async with registry_harness(tag_list_style="all") as h:
        h.fake.add_repository("library/php", 1500)
        names = [n async for n in h.oci(page_size=100).list_tags("library/php")]
        assert len(names) == 1500
        assert h.fake.stats.count("oci_tags", status=200) == 1


async def test_bearer_challenge_then_token_then_retry(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 3)
    await scan(h.oci(), "org/app")

    first, token, retried = h.fake.stats.records[:3]
    assert (first.kind, first.status) == ("oci_tags", 401)
    assert token.kind == "oci_token"
    assert parse_qs(token.query) == {
        "scope": ["repository:org/app:pull"],
        "service": ["fake-registry"],
    }
    assert token.username is None  # anonymous: no credentials configured
    assert (retried.kind, retried.status) == ("oci_tags", 200)
    assert h.fake.stats.count(status=401) == 1
    assert h.fake.stats.count("oci_token") == 1  # one token for the tag list and every HEAD


async def test_next_client_fetches_the_token_without_a_401(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 3)
    h.fake.add_repository("org/other", 3)
    await scan(h.oci(), "org/app")
    h.fake.stats.reset()

    await scan(h.oci(), "org/other")  # new scope, but the realm is already known

    assert [r.kind for r in h.fake.stats.records[:2]] == ["oci_token", "oci_tags"]
    assert h.fake.stats.count(status=401) == 0


async def test_basic_credentials_go_to_the_token_endpoint(h: RegistryHarness) -> None:
    h.fake.add_user("ci", "pat-123")
    h.fake.add_repository("org/private", 2, private=True)

    tags = await scan(h.oci(username="ci", password="pat-123"), "org/private")

    assert len(tags) == 2
    tokens = h.fake.stats.matching("oci_token")
    assert [t.username for t in tokens] == ["ci"]


async def test_private_repository_without_credentials_fails_auth(h: RegistryHarness) -> None:
    h.fake.add_repository("org/private", 2, private=True)
    with pytest.raises(AuthenticationFailed):
        await scan(h.oci(), "org/private")


async def test_wrong_credentials_fail_at_the_token_endpoint(h: RegistryHarness) -> None:
    h.fake.add_user("ci", "pat-123")
    h.fake.add_repository("org/app", 2)
    with pytest.raises(AuthenticationFailed):
        await scan(h.oci(username="ci", password="wrong"), "org/app")


async def test_plain_basic_auth_registry() -> None:
    async with registry_harness(oci_auth="basic") as h:
        h.fake.add_user("admin", "pw")
        h.fake.add_repository("team/svc", 4)
        tags = await scan(h.oci(username="admin", password="pw"), "team/svc")
        assert len(tags) == 4
        # One 401 to learn the scheme, then Basic is sent up front on every request.
        assert h.fake.stats.count(status=401) == 1
        assert h.fake.stats.count("oci_token") == 0
        with pytest.raises(AuthenticationFailed):
            await scan(h.oci(), "team/svc")


async def test_discovery_uses_head_only(h: RegistryHarness) -> None:
    repo = h.fake.add_repository("org/app", 40)

    tags = await scan(h.oci(), "org/app")

    assert len(tags) == 40
    assert all(not t.resolved and t.platforms == () for t in tags)
    assert {t.name: t.digest for t in tags} == {
        name: record.artifact.digest for name, record in repo.tags.items()
    }
    assert h.fake.stats.count("oci_manifest", "HEAD") == 40
    assert h.fake.stats.count("oci_manifest", "GET") == 0
    assert h.fake.stats.count("oci_blob") == 0


async def test_heads_do_not_spend_the_pull_budget(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 20)
    client = h.oci()
    await scan(client, "library/redis")
    assert client.budget() == 100
    await client.resolve_tag("library/redis", "1.1.9")
    assert client.budget() == 98  # the index and one platform manifest were GETs


async def test_resolve_changed_resolves_only_new_and_changed_tags(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 10)
    client = h.oci(resolve_changed=True)
    known = {t.name: t.digest for t in await scan(h.oci(), "org/app")}
    h.fake.push_tag("org/app", "2.0.0")
    h.fake.repush_tag("org/app", "1.0.3")
    h.fake.stats.reset()

    tags = await scan(client, "org/app", known)

    resolved = sorted(t.name for t in tags if t.resolved)
    assert resolved == ["1.0.3", "2.0.0"]
    assert all(t.architectures == ["amd64", "arm/v7", "arm64"] for t in tags if t.resolved)
    assert h.fake.stats.count("oci_manifest", "HEAD") == 11
    assert h.fake.stats.count("oci_manifest", "GET") == 4  # index + one platform, twice


async def test_resolve_index_platforms_digest_and_created(h: RegistryHarness) -> None:
    built = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    h.fake.add_repository("library/redis", 0)
    record = h.fake.model.push_tag("library/redis", "7.2.5", created=built)

    tag = await h.oci().resolve_tag("library/redis", "7.2.5")

    assert tag.resolved
    assert tag.digest == record.artifact.digest
    assert tag.architectures == ["amd64", "arm/v7", "arm64"]  # attestations dropped
    assert tag.platform_digests == {i.spec.key[1]: i.digest for i in record.artifact.images}
    assert tag.last_updated == built  # from the config blob
    # The index, then linux/amd64 only, then its config (after one 401 to learn the realm).
    assert h.fake.stats.count("oci_manifest", "GET", status=200) == 2
    assert h.fake.stats.count("oci_blob", "GET", status=200) == 1


async def test_resolve_single_manifest_reads_platform_from_config(h: RegistryHarness) -> None:
    built = datetime(2025, 12, 1, tzinfo=UTC)
    h.fake.add_repository("org/tool", 0, platforms=("linux/arm/v7",))
    record = h.fake.model.push_tag("org/tool", "v1", created=built)

    tag = await h.oci().resolve_tag("org/tool", "v1")

    assert tag.architectures == ["arm/v7"]
    assert tag.digest == record.artifact.digest
    assert tag.platform_digests == {"arm/v7": record.artifact.digest}
    assert tag.last_updated == built
    assert tag.platforms[0].size == record.artifact.images[0].size


async def test_docker_manifest_list_is_read_too(h: RegistryHarness) -> None:
    h.fake.add_repository("legacy/app", 2, media_types="docker")
    tag = await h.oci().resolve_tag("legacy/app", "1.0.1")
    assert tag.architectures == ["amd64", "arm/v7", "arm64"]
    assert tag.last_updated is not None


async def test_429_retry_after_is_honoured(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 5)
    client = h.oci()
    await scan(client, "org/app")  # token and challenge out of the way
    h.fake.stats.reset()
    start = h.clock.now()
    h.fake.faults.force_429(20, kind="oci_manifest")

    tags = await scan(client, "org/app")

    assert len(tags) == 5
    refused = h.fake.stats.matching(status=429)
    assert len(refused) == 1
    after = [r for r in h.fake.stats.records if r.at > refused[0].at or r is not refused[0]]
    manifest_requests = [r for r in after if r.kind == "oci_manifest" and r.status == 200]
    assert len(manifest_requests) == 5
    assert all(r.at >= start + 20 for r in manifest_requests)


async def test_spent_pull_budget_raises_rate_limited_before_sending() -> None:
    async with registry_harness(pull_limit=1) as h:
        h.fake.add_repository("library/redis", 2)
        with pytest.raises(RateLimited) as caught:
            await h.oci().resolve_tag("library/redis", "1.0.1")
        # The index GET spent the last pull ("0;w=21600"), so the child GET was never sent.
        assert h.fake.stats.count("oci_manifest", "GET", status=200) == 1
        assert h.fake.stats.count(status=429) == 0
        # With no reset time, a full 6 h window is the only honest guess.
        earliest = datetime.fromtimestamp(h.clock.now(), UTC) + timedelta(hours=5)
        assert caught.value.retry_at > earliest


async def test_pull_429_without_retry_after_stops_retrying() -> None:
    async with registry_harness(pull_limit=1) as h:
        h.fake.add_repository("library/redis", 2)
        h.fake.take_pull("GET")  # someone else on this IP spent the budget
        with pytest.raises(RateLimited):
            await h.oci().resolve_tag("library/redis", "1.0.1")
        assert h.fake.stats.count("oci_manifest", status=429) == 1  # and no second try


async def test_unknown_repository_is_image_not_found(h: RegistryHarness) -> None:
    with pytest.raises(ImageNotFound):
        await scan(h.oci(), "org/nothing")
    h.fake.add_repository("org/app", 2)
    with pytest.raises(ImageNotFound):
        await h.oci().resolve_tag("org/app", "no-such-tag")


async def test_malformed_tag_list_is_malformed_response(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 2)
    h.fake.faults.malform("/v2/org/app/tags/list")
    with pytest.raises(MalformedResponse):
        await scan(h.oci(), "org/app")
    assert h.fake.stats.count("oci_manifest") == 0


async def test_5xx_on_heads_is_retried(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 6)
    h.fake.faults.fail_next(2, status=500, kind="oci_manifest")
    tags = await scan(h.oci(), "org/app")
    assert len(tags) == 6
    assert h.fake.stats.count("oci_manifest", status=500) == 2


class InFlight(httpx.AsyncBaseTransport):
    """Counts concurrent requests on their way to the fake."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.001)
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


async def test_heads_run_concurrently_within_the_bound(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 60)
    counter = InFlight(h.fake.transport())
    async with httpx.AsyncClient(transport=counter) as http:
        h.http = http
        tags = await scan(h.oci(head_concurrency=5), "org/app")
    assert [t.name for t in tags] == sorted(t.name for t in tags)  # listing order kept
    assert counter.peak == 5


async def test_stopping_early_cancels_outstanding_heads(h: RegistryHarness) -> None:
    h.fake.add_repository("org/app", 100)
    iterator = h.oci(head_concurrency=4).iter_tags("org/app", {})
    first = await anext(iterator)
    await iterator.aclose()  # type: ignore[attr-defined]
    assert first.name == "1.0.0"
    assert h.fake.stats.count("oci_manifest") < 100


class NoDigestOnHead(httpx.AsyncBaseTransport):
    """A registry that leaves Docker-Content-Digest off its HEAD answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "HEAD":
            del response.headers["Docker-Content-Digest"]
        return response


async def test_head_without_digest_falls_back_to_get(h: RegistryHarness) -> None:
    repo = h.fake.add_repository("org/app", 2)
    async with httpx.AsyncClient(transport=NoDigestOnHead(h.fake.transport())) as http:
        h.http = http
        tags = await scan(h.oci(), "org/app")
    assert {t.name: t.digest for t in tags} == {
        name: record.artifact.digest for name, record in repo.tags.items()
    }
    assert all(t.resolved for t in tags)  # the GET gave the full detail anyway
    assert h.fake.stats.count("oci_manifest", "GET", status=200) == 4
