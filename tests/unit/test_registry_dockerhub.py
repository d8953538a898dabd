"""The Docker Hub client against the fake Hub API: paging, early stop, auth, rate limits, faults."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.datastructures import URL

from tagwarden.registry import (
    AuthenticationFailed,
    DockerHubClient,
    ImageNotFound,
    MalformedResponse,
    RateLimited,
    RegistryUnavailable,
    RemoteTag,
)
from tagwarden.testing import RegistryHarness, registry_harness
from tagwarden.testing.fake_hub import OFFSET_LIMIT_MESSAGE


@pytest.fixture
async def h() -> AsyncIterator[RegistryHarness]:
    async with registry_harness() as harness:
        yield harness


async def scan(client: DockerHubClient, repo: str, known: dict[str, str | None]) -> list[RemoteTag]:
    return [tag async for tag in client.iter_tags(repo, known)]


def known_from(tags: list[RemoteTag]) -> dict[str, str | None]:
    return {t.name: t.digest for t in tags}


async def test_first_scan_of_1000_tags_costs_10_requests_newest_first(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 1000)
    tags = await scan(h.hub(), "library/redis", {})

    assert len(tags) == 1000
    assert len({t.name for t in tags}) == 1000
    dates = [t.last_updated for t in tags]
    assert all(d is not None for d in dates)
    assert dates == sorted(dates, reverse=True)  # type: ignore[type-var]
    assert tags[0].name == "10.9.9"  # the last one pushed
    requests = h.fake.stats.matching("hub_tags")
    assert len(requests) == h.fake.stats.count() == 10
    # First request as documented, then the absolute `next` URLs, pages 2..10.
    pages = [parse_qs(r.query) for r in requests]
    assert pages[0] == {"page_size": ["100"], "ordering": ["last_updated"]}
    assert [p.get("page", ["1"])[0] for p in pages] == [str(n) for n in range(1, 11)]
    assert all(p["ordering"] == ["last_updated"] for p in pages)


async def test_rescan_of_unchanged_repository_costs_one_request(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 1000)
    client = h.hub()
    first = await scan(client, "library/redis", {})
    h.fake.stats.reset()

    again = await scan(client, "library/redis", known_from(first))

    assert h.fake.stats.count() == 1
    assert [t.name for t in again] == ["10.9.9"]  # stops at the first known, unchanged tag


async def test_rescan_yields_new_tags_then_stops(h: RegistryHarness) -> None:
    h.fake.add_repository("grafana/grafana", 250)
    client = h.hub()
    known = known_from(await scan(client, "grafana/grafana", {}))
    h.clock.advance(3600)
    h.fake.push_tag("grafana/grafana", "12.0.0")
    h.clock.advance(60)
    h.fake.push_tag("grafana/grafana", "12.0.1")
    h.fake.stats.reset()

    tags = await scan(client, "grafana/grafana", known)

    assert [t.name for t in tags] == ["12.0.1", "12.0.0", "3.4.9"]
    assert h.fake.stats.count() == 1


async def test_repushed_tag_comes_first_with_its_new_digest(h: RegistryHarness) -> None:
    h.fake.add_repository("library/nginx", 300)
    client = h.hub()
    first = await scan(client, "library/nginx", {})
    known = known_from(first)
    old = next(t for t in first if t.name == "1.5.0")
    h.clock.advance(60)
    h.fake.repush_tag("library/nginx", "1.5.0", only_platform="linux/arm64/v8")
    h.fake.stats.reset()

    tags = await scan(client, "library/nginx", known)

    assert [t.name for t in tags] == ["1.5.0", "3.9.9"]
    repushed = tags[0]
    assert repushed.digest != old.digest
    changed = {
        arch
        for arch, digest in repushed.platform_digests.items()
        if old.platform_digests[arch] != digest
    }
    assert changed == {"arm64"}  # only that platform was rebuilt
    assert h.fake.stats.count() == 1


async def test_attestations_dropped_variant_kept_per_platform_digests(
    h: RegistryHarness,
) -> None:
    repo = h.fake.add_repository("library/redis", 3)
    client = h.hub()
    raw = (await h.http.get("http://hub.fake.test/v2/repositories/library/redis/tags/")).json()
    raw_arches = [i["architecture"] for i in raw["results"][0]["images"]]
    assert raw_arches.count("unknown") == 3  # the Hub lists BuildKit attestations...

    (newest, *_) = await scan(client, "library/redis", {})

    assert newest.architectures == ["amd64", "arm/v7", "arm64"]  # ...which are not platforms
    assert newest.resolved
    record = repo.tags[newest.name]
    assert newest.digest == record.artifact.digest
    expected = {
        image.spec.key[1]: image.digest for image in record.artifact.images
    }  # normalised arch → platform manifest digest in the model
    assert newest.platform_digests == expected
    assert all(p.size and p.size > 0 for p in newest.platforms)


async def test_resolve_tag_reads_the_single_tag_endpoint(h: RegistryHarness) -> None:
    repo = h.fake.add_repository("grafana/grafana", 5, with_latest=True)
    tag = await h.hub().resolve_tag("grafana/grafana", "latest")
    assert tag.name == "latest"
    assert tag.digest == repo.tags["1.0.4"].artifact.digest
    assert h.fake.stats.count("hub_tag", "GET") == 1


async def test_official_image_without_namespace_uses_library(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 2)
    tags = await scan(h.hub(), "redis", {})
    assert len(tags) == 2
    assert h.fake.stats.matching()[0].path == "/v2/repositories/library/redis/tags/"


async def test_sign_in_is_used_when_credentials_are_set(h: RegistryHarness) -> None:
    h.fake.add_user("alice", "s3cret")
    h.fake.add_repository("library/php", 1200)

    tags = await scan(h.hub(username="alice", password="s3cret"), "library/php", {})

    assert len(tags) == 1200  # signed in, so paging past offset 1,000 is allowed
    logins = h.fake.stats.matching("hub_login")
    assert len(logins) == 1
    assert h.fake.stats.records[0].kind == "hub_login"
    listing = h.fake.stats.matching("hub_tags")
    assert len(listing) == 12
    assert all(r.username == "alice" for r in listing)


async def test_first_scan_of_1000_tags_with_sign_in_costs_11(h: RegistryHarness) -> None:
    h.fake.add_user("alice", "s3cret")
    h.fake.add_repository("library/redis", 1000)
    await scan(h.hub(username="alice", password="s3cret"), "library/redis", {})
    assert h.fake.stats.count() == 11


async def test_token_is_reused_by_the_next_client(h: RegistryHarness) -> None:
    h.fake.add_user("alice", "s3cret")
    h.fake.add_repository("library/redis", 50)
    first = await scan(h.hub(username="alice", password="s3cret"), "library/redis", {})
    h.fake.stats.reset()

    # The monitor builds a client per scan; the shared state keeps the JWT.
    await scan(h.hub(username="alice", password="s3cret"), "library/redis", known_from(first))

    assert h.fake.stats.count() == 1
    assert h.fake.stats.count("hub_login") == 0


async def test_wrong_password_is_authentication_failed(h: RegistryHarness) -> None:
    h.fake.add_user("alice", "s3cret")
    h.fake.add_repository("library/redis", 5)
    with pytest.raises(AuthenticationFailed):
        await scan(h.hub(username="alice", password="nope"), "library/redis", {})
    assert h.fake.stats.count("hub_tags") == 0


async def test_anonymous_paging_stops_at_the_offset_limit(
    h: RegistryHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h.fake.add_repository("library/php", 1200)
    with caplog.at_level(logging.WARNING):
        tags = await scan(h.hub(), "library/php", {})
    assert len(tags) == 1000  # the newest thousand: the ones that matter
    refused = h.fake.stats.matching(status=403)
    assert len(refused) == 1
    assert parse_qs(refused[0].query)["page"] == ["11"]
    assert "1,000" in caplog.text
    assert OFFSET_LIMIT_MESSAGE.startswith("pagination offset too large")


@pytest.mark.parametrize("style", ["x-retry-after", "retry-after", "http-date"])
async def test_429_wait_is_honoured(h: RegistryHarness, style: str) -> None:
    h.fake.add_repository("library/redis", 250)
    start = h.clock.now()
    h.fake.faults.force_429(30, kind="hub", style=style)  # type: ignore[arg-type]

    tags = await scan(h.hub(), "library/redis", {})

    assert len(tags) == 250
    records = h.fake.stats.records
    assert [r.status for r in records] == [429, 200, 200, 200]
    # Nothing reached the host before the wait ended (X-Retry-After/HTTP dates are whole seconds).
    assert records[1].at >= start + 30
    assert h.clock.now() - start < 32  # and it did not wait much longer either


async def test_429_with_a_wait_beyond_the_limit_raises(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 10)
    h.fake.faults.force_429(3600, kind="hub")
    client = h.hub()
    with pytest.raises(RateLimited) as caught:
        await scan(client, "library/redis", {})
    assert caught.value.retry_at.timestamp() == pytest.approx(h.clock.now() + 3600, abs=1)
    # A second scan in the meantime does not knock on the door again.
    with pytest.raises(RateLimited):
        await scan(client, "library/redis", {})
    assert h.fake.stats.count() == 1


async def test_hub_budget_is_spent_without_a_429() -> None:
    async with registry_harness(hub_rate_limit=10) as h:
        h.fake.add_user("alice", "s3cret")
        h.fake.add_repository("library/php", 1200)
        client = h.hub(username="alice", password="s3cret")

        tags = await scan(client, "library/php", {})

        assert len(tags) == 1200
        assert h.fake.stats.count() == 13  # 1 sign-in + 12 pages, over a limit of 10/min
        assert h.fake.stats.count(status=429) == 0  # waited for the reset instead
        assert h.clock.now() - h.fake.stats.records[0].at >= 60
        assert client.budget() is not None


async def test_budget_reports_the_hub_headers(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 10)
    client = h.hub()
    assert client.budget() is None
    await scan(client, "library/redis", {})
    assert client.budget() == 179


async def test_5xx_burst_is_retried_then_recovers(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 150)
    h.fake.faults.fail_next(3, status=503, kind="hub_tags")

    tags = await scan(h.hub(max_retries=4), "library/redis", {})

    assert len(tags) == 150
    assert [r.status for r in h.fake.stats.records] == [503, 503, 503, 200, 200]
    # Exponential backoff with full jitter: attempt n sleeps at most 0.5·2^n seconds.
    assert len(h.clock.sleeps) == 3
    assert all(0 <= s <= 0.5 * 2**n for n, s in enumerate(h.clock.sleeps))


async def test_5xx_beyond_max_retries_is_unavailable(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 5)
    h.fake.faults.fail_next(10, status=502)
    with pytest.raises(RegistryUnavailable):
        await scan(h.hub(max_retries=2), "library/redis", {})
    assert h.fake.stats.count(status=502) == 3  # the first try and two retries


class FlakyTransport(httpx.AsyncBaseTransport):
    """Raises the given errors first, then lets requests through to the fake."""

    def __init__(self, inner: httpx.AsyncBaseTransport, errors: list[Exception]) -> None:
        self.inner = inner
        self.errors = errors

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.errors:
            raise self.errors.pop(0)
        return await self.inner.handle_async_request(request)


async def test_timeouts_and_connection_errors_are_retried(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 5)
    errors: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    async with httpx.AsyncClient(transport=FlakyTransport(h.fake.transport(), errors)) as http:
        h.http = http
        tags = await scan(h.hub(), "library/redis", {})
    assert len(tags) == 5
    assert errors == []
    assert len(h.clock.sleeps) == 2


async def test_connection_errors_beyond_max_retries(h: RegistryHarness) -> None:
    errors: list[Exception] = [httpx.ConnectError("refused") for _ in range(5)]
    async with httpx.AsyncClient(transport=FlakyTransport(h.fake.transport(), errors)) as http:
        h.http = http
        with pytest.raises(RegistryUnavailable):
            await scan(h.hub(max_retries=1), "library/redis", {})
    assert len(errors) == 3  # two attempts used


async def test_404_is_image_not_found_without_retry(h: RegistryHarness) -> None:
    with pytest.raises(ImageNotFound):
        await scan(h.hub(), "library/nosuchimage", {})
    h.fake.add_repository("library/redis", 5)
    h.fake.faults.not_found("library/redis")
    with pytest.raises(ImageNotFound):
        await h.hub().resolve_tag("library/redis", "1.0.0")
    assert h.fake.stats.count() == 2
    assert h.clock.sleeps == []


async def test_malformed_json_is_malformed_response_without_retry(h: RegistryHarness) -> None:
    h.fake.add_repository("library/redis", 5)
    h.fake.faults.malform("/v2/repositories/library/redis/tags*")
    with pytest.raises(MalformedResponse):
        await scan(h.hub(), "library/redis", {})
    assert h.fake.stats.count() == 1


async def test_unexpected_shape_is_malformed(h: RegistryHarness) -> None:
    client = h.hub()

    async def bad_send(*_: object, **__: object) -> httpx.Response:
        request = httpx.Request("GET", "http://hub.fake.test/")
        return httpx.Response(200, json={"results": {"name": "x"}}, request=request)

    client.transport.send = bad_send  # type: ignore[method-assign]
    with pytest.raises(MalformedResponse):
        await scan(client, "library/redis", {})


async def test_ascending_order_disables_early_stop(
    h: RegistryHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h.fake.add_repository("library/redis", 30)
    client = h.hub()
    known = known_from(await scan(client, "library/redis", {}))
    h.fake.stats.reset()
    # If the Hub ever sorted oldest first, stopping at the first known tag would miss new ones.
    client.tags_url = lambda repo: (  # type: ignore[method-assign]
        f"http://hub.fake.test/v2/repositories/{repo}/tags/?page_size=10&ordering=-last_updated"
    )
    h.clock.advance(60)
    h.fake.push_tag("library/redis", "99.0.0")

    with caplog.at_level(logging.WARNING):
        tags = await scan(client, "library/redis", known)

    assert [t.name for t in tags][-1] == "99.0.0"  # read to the end, where the new tag is
    assert h.fake.stats.count() == 4
    assert "not newest first" in caplog.text


async def test_a_next_page_on_another_host_is_refused(h: RegistryHarness) -> None:
    h.fake.add_user("alice", "s3cret")
    h.fake.add_repository("library/redis", 150)
    # A `next` on another host (e.g. a misconfigured proxy) is not followed at all:
    # neither the JWT nor a request goes there.
    h.fake.public_url = URL("http://elsewhere.test")
    with pytest.raises(MalformedResponse, match="next page is on another host"):
        await scan(h.hub(username="alice", password="s3cret"), "library/redis", {})
    pages = h.fake.stats.matching("hub_tags")
    assert [p.username for p in pages] == ["alice"]
