"""The fake registry answers like the real ones (REGISTRY_FACTS.md), and its knobs work."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tagwarden.cli import fake_registry as cli_module
from tagwarden.registry import DockerHubClient, OciClient, RegistryState, Transport
from tagwarden.registry.manifests import ACCEPT, OCI_INDEX
from tagwarden.testing import FakeClock, FakeRegistry, running
from tagwarden.testing.fake_hub import OFFSET_LIMIT_MESSAGE

HUB = "http://hub.fake.test"
REG = "http://registry.fake.test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeRegistry:
    return FakeRegistry(clock=clock, oci_auth="none")


@pytest.fixture
async def http(fake: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


# -- Hub API -------------------------------------------------------------------------------------


async def test_hub_page_size_default_cap_and_absolute_next(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 250)
    default = (await http.get(f"{HUB}/v2/repositories/library/redis/tags")).json()
    assert len(default["results"]) == 10  # "Defaults to 10"
    big = await http.get(f"{HUB}/v2/repositories/library/redis/tags/?page_size=500")
    body = big.json()
    assert body["count"] == 250
    assert len(body["results"]) == 100  # "Max of 100", silently capped
    assert body["previous"] is None
    assert body["next"].startswith(f"{HUB}/v2/repositories/library/redis/tags/?")
    assert "page=2" in body["next"]
    third = await http.get(f"{HUB}/v2/repositories/library/redis/tags/?page=3&page_size=100")
    assert third.json()["next"] is None
    assert len(third.json()["results"]) == 50


async def test_hub_documented_namespaces_path_serves_the_same(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 5)
    old = (await http.get(f"{HUB}/v2/repositories/library/redis/tags/")).json()
    new = (await http.get(f"{HUB}/v2/namespaces/library/repositories/redis/tags")).json()
    assert old["results"] == new["results"]


async def test_hub_tag_object_has_the_real_fields(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 3)
    fake.add_repository("grafana/grafana", 1)
    (tag, *_) = (await http.get(f"{HUB}/v2/repositories/library/redis/tags/")).json()["results"]
    for field in ("digest", "media_type", "content_type", "tag_status", "last_updated", "images"):
        assert field in tag
    assert isinstance(tag["images"], list)  # a list, not the documented object
    assert {i["architecture"] for i in tag["images"]} == {"amd64", "arm64", "arm", "unknown"}
    assert {i["variant"] for i in tag["images"]} == {None, "v8", "v7"}
    (third_party,) = (await http.get(f"{HUB}/v2/repositories/grafana/grafana/tags/")).json()[
        "results"
    ]
    assert "unknown" not in {i["architecture"] for i in third_party["images"]}


async def test_hub_timestamps_vary_in_precision(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 9)
    results = (await http.get(f"{HUB}/v2/repositories/library/redis/tags/")).json()["results"]
    fractions = {len(re.sub(r".*:\d\d(\.(\d+))?Z$", r"\2", r["last_updated"])) for r in results}
    assert fractions == {0, 6, 9}


async def test_hub_ordering_values(fake: FakeRegistry, http: httpx.AsyncClient) -> None:
    fake.add_repository("library/redis", 5)
    url = f"{HUB}/v2/repositories/library/redis/tags/"
    newest = [r["name"] for r in (await http.get(f"{url}?ordering=last_updated")).json()["results"]]
    oldest = [
        r["name"] for r in (await http.get(f"{url}?ordering=-last_updated")).json()["results"]
    ]
    assert newest == ["1.0.4", "1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    assert oldest == list(reversed(newest))
    filtered = (await http.get(f"{url}?name=1.0.3")).json()
    assert [r["name"] for r in filtered["results"]] == ["1.0.3"]


async def test_hub_anonymous_offset_limit_and_errors(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/php", 1100)
    url = f"{HUB}/v2/repositories/library/php/tags/"
    assert (await http.get(f"{url}?page=10&page_size=100")).status_code == 200
    refused = await http.get(f"{url}?page=11&page_size=100")
    assert refused.status_code == 403
    assert refused.json() == {"message": OFFSET_LIMIT_MESSAGE, "errinfo": {}}
    fake.add_repository("library/small", 5)
    past_end = await http.get(f"{HUB}/v2/repositories/library/small/tags/?page=2&page_size=10")
    assert past_end.status_code == 404
    assert past_end.json()["message"] == "httperror 404: object not found"
    missing = await http.get(f"{HUB}/v2/repositories/nobody/nothing/tags/")
    assert missing.json()["errinfo"] == {"namespace": "nobody", "repository": "nothing"}
    head = await http.head(url)
    assert head.status_code == 200
    assert head.content == b""


async def test_hub_sign_in_lifts_the_offset_limit(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_user("alice", "pw")
    fake.add_repository("library/php", 1100)
    bad = await http.post(f"{HUB}/v2/auth/token", json={"identifier": "alice", "secret": "x"})
    assert bad.status_code == 401
    good = await http.post(f"{HUB}/v2/auth/token", json={"identifier": "alice", "secret": "pw"})
    token = good.json()["access_token"]
    assert token.count(".") == 2  # JWT-shaped
    page = await http.get(
        f"{HUB}/v2/repositories/library/php/tags/?page=11&page_size=100",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert page.status_code == 200
    assert len(page.json()["results"]) == 100


async def test_hub_rate_limit_headers_and_429(clock: FakeClock) -> None:
    fake = FakeRegistry(clock=clock, hub_rate_limit=3)
    fake.add_repository("library/redis", 1)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        url = f"{HUB}/v2/repositories/library/redis/tags/"
        answers = [await http.get(url) for _ in range(4)]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
    reset = int(answers[0].headers["X-RateLimit-Reset"])
    assert reset == int(clock.now()) + 60
    assert answers[3].status_code == 429
    assert answers[3].headers["X-Retry-After"] == str(reset)  # a unix time, not seconds
    assert answers[3].json() == {"detail": "Rate limit exceeded", "error": False}


# -- registry API --------------------------------------------------------------------------------


async def test_manifest_digest_is_the_sha256_of_the_body(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 1)
    got = await http.get(f"{REG}/v2/library/redis/manifests/1.0.0", headers={"Accept": ACCEPT})
    digest = "sha256:" + hashlib.sha256(got.content).hexdigest()
    assert got.headers["Docker-Content-Digest"] == digest
    assert got.headers["Content-Type"].startswith(OCI_INDEX)
    index = json.loads(got.content)
    attestations = [m for m in index["manifests"] if m["platform"]["os"] == "unknown"]
    assert len(attestations) == 3
    for entry in index["manifests"]:
        child = await http.get(f"{REG}/v2/library/redis/manifests/{entry['digest']}")
        assert "sha256:" + hashlib.sha256(child.content).hexdigest() == entry["digest"]
        assert len(child.content) == entry["size"]
    head = await http.head(f"{REG}/v2/library/redis/manifests/1.0.0", headers={"Accept": ACCEPT})
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(got.content))
    assert head.headers["Docker-Content-Digest"] == digest


async def test_manifest_content_negotiation_and_etag(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("library/redis", 1)
    url = f"{REG}/v2/library/redis/manifests/1.0.0"
    refused = await http.get(url, headers={"Accept": "application/json"})
    assert refused.status_code == 404
    assert refused.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    digest = (await http.head(url, headers={"Accept": ACCEPT})).headers["Docker-Content-Digest"]
    cached = await http.get(url, headers={"Accept": ACCEPT, "If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304


async def test_only_get_spends_pulls(clock: FakeClock) -> None:
    fake = FakeRegistry(clock=clock, oci_auth="none", pull_limit=2)
    fake.add_repository("library/redis", 1)
    url = f"{REG}/v2/library/redis/manifests/1.0.0"
    async with httpx.AsyncClient(transport=fake.transport(), headers={"Accept": ACCEPT}) as http:
        heads = [await http.head(url) for _ in range(3)]
        gets = [await http.get(url) for _ in range(3)]
    assert {h.headers["ratelimit-remaining"] for h in heads} == {"2;w=21600"}
    assert [g.status_code for g in gets] == [200, 200, 429]
    assert gets[1].headers["ratelimit-remaining"] == "0;w=21600"
    assert gets[2].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "Retry-After" not in gets[2].headers  # Docker documents none


async def test_tag_list_paging_rules(fake: FakeRegistry, http: httpx.AsyncClient) -> None:
    fake.add_repository("org/app", 5)
    url = f"{REG}/v2/org/app/tags/list"
    everything = await http.get(url)
    assert everything.json() == {"name": "org/app", "tags": [f"1.0.{i}" for i in range(5)]}
    first = await http.get(f"{url}?n=2")
    assert first.json()["tags"] == ["1.0.0", "1.0.1"]
    assert first.headers["Link"] == '</v2/org/app/tags/list?last=1.0.1&n=2>; rel="next"'
    after = await http.get(f"{url}?n=10&last=1.0.1")
    assert after.json()["tags"] == ["1.0.2", "1.0.3", "1.0.4"]  # last is exclusive
    assert "Link" not in after.headers
    zero = await http.get(f"{url}?n=0")
    assert zero.json()["tags"] == []
    assert "Link" not in zero.headers
    bad = await http.get(f"{url}?n=many")
    assert bad.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    unknown = await http.get(f"{REG}/v2/org/none/tags/list")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_bearer_challenge_and_token_endpoint(clock: FakeClock) -> None:
    fake = FakeRegistry(clock=clock)
    fake.add_repository("org/app", 1)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        challenged = await http.get(f"{REG}/v2/org/app/tags/list")
        assert challenged.status_code == 401
        assert challenged.headers["WWW-Authenticate"] == (
            f'Bearer realm="{REG}/token",service="fake-registry",scope="repository:org/app:pull"'
        )
        token = (
            await http.get(
                f"{REG}/token",
                params={"service": "fake-registry", "scope": "repository:org/app:pull"},
            )
        ).json()
        assert token["token"] == token["access_token"]
        assert token["expires_in"] == 300
        ok = await http.get(
            f"{REG}/v2/org/app/tags/list", headers={"Authorization": f"Bearer {token['token']}"}
        )
        assert ok.status_code == 200
        clock.advance(301)
        expired = await http.get(
            f"{REG}/v2/org/app/tags/list", headers={"Authorization": f"Bearer {token['token']}"}
        )
        assert expired.status_code == 401


async def test_blobs_are_content_addressed(fake: FakeRegistry, http: httpx.AsyncClient) -> None:
    fake.add_repository("org/app", 1, platforms=("linux/amd64",))
    manifest = (
        await http.get(f"{REG}/v2/org/app/manifests/1.0.0", headers={"Accept": ACCEPT})
    ).json()
    config = await http.get(f"{REG}/v2/org/app/blobs/{manifest['config']['digest']}")
    assert "sha256:" + hashlib.sha256(config.content).hexdigest() == manifest["config"]["digest"]
    assert config.json()["architecture"] == "amd64"
    assert (await http.get(f"{REG}/v2/org/app/blobs/sha256:{'0' * 64}")).status_code == 404


# -- model helpers and faults --------------------------------------------------------------------


def test_repush_of_one_platform_changes_only_that_platform(fake: FakeRegistry) -> None:
    repo = fake.add_repository("library/redis", 2)
    before = repo.tags["1.0.1"].artifact
    after = fake.repush_tag("library/redis", "1.0.1", only_platform="linux/arm/v7").artifact
    assert after.digest != before.digest
    changed = [
        str(a.spec)
        for a, b in zip(before.images, after.images, strict=True)
        if a.digest != b.digest
    ]
    assert changed == ["linux/arm/v7"]
    alias = fake.alias_tag("library/redis", "latest", "1.0.1")
    assert alias.artifact.digest == after.digest
    with pytest.raises(ValueError, match="no platform"):
        fake.repush_tag("library/redis", "1.0.1", only_platform="linux/s390x")


async def test_faults_latency_burst_malformed_and_missing(
    fake: FakeRegistry, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    fake.add_repository("org/app", 2)
    url = f"{REG}/v2/org/app/tags/list"
    fake.faults.latency_ms = 250
    start = clock.now()
    await http.get(url)
    assert clock.now() - start == pytest.approx(0.25)
    fake.faults.latency_ms = 0
    fake.faults.fail_next(2, status=502, kind="oci_tags")
    assert [(await http.get(url)).status_code for _ in range(3)] == [502, 502, 200]
    fake.faults.malform("/v2/org/*/tags/list")
    with pytest.raises(json.JSONDecodeError):
        (await http.get(url)).json()
    fake.faults.reset()
    fake.faults.not_found("org/app")
    assert (await http.get(url)).status_code == 404
    assert fake.stats.by_kind()[("oci_tags", "GET")] == 6
    assert fake.stats.count(status=502) == 2


# -- served on a real port, and the CLI ----------------------------------------------------------


async def test_served_on_a_port_the_clients_work() -> None:
    fake = FakeRegistry()  # real clock: the server really runs
    fake.add_repository("library/redis", 120)
    fake.add_repository("org/app", 3)
    with running(fake) as base_url:
        async with httpx.AsyncClient() as http:
            transport = Transport(http, RegistryState(), max_retries=1, timeout=5)
            hub_tags = [
                t async for t in DockerHubClient(transport, base_url).iter_tags("redis", {})
            ]
            oci = OciClient(transport, base_url)
            oci_tags = [t async for t in oci.iter_tags("org/app", {})]
            page = (await http.get(f"{base_url}/v2/repositories/library/redis/tags/")).json()
    assert len(hub_tags) == 120
    assert len(oci_tags) == 3
    assert page["next"].startswith(base_url)  # usable from outside, not a test host name


def test_cli_seeds_and_prints_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[str, int, FakeRegistry]] = []
    monkeypatch.setattr(cli_module, "serve", lambda h, p, f: served.append((h, p, f)))
    app = typer.Typer()
    app.command()(cli_module.fake_registry)

    result = CliRunner().invoke(app, ["--port", "5999", "--repos", "2", "--tags", "7"])

    assert result.exit_code == 0, result.output
    assert "export TAGWARDEN_DOCKERHUB_API_URL=http://127.0.0.1:5999" in result.output
    assert 'export TAGWARDEN_REGISTRIES=\'{"ghcr.io":{"url":"http://127.0.0.1:5999"}}\'' in (
        result.output
    )
    ((host, port, fake),) = served
    assert (host, port) == ("127.0.0.1", 5999)
    assert {"library/redis", "library/nginx", "grafana/grafana", "org/app"} <= set(
        fake.model.repositories
    )
    assert len(fake.model.repository("demo/app-1").tags) == 7
    assert "latest" in fake.model.repository("library/redis").tags
