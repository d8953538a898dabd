"""The fake's Quay, Harbor and GitHub APIs answer as REGISTRY_FACTS.md describes them, with the
fake's faults on their routes too. Loopback addresses only, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from tagwarden.config import RegistryCredentials
from tagwarden.registry import MalformedResponse, RegistryState, client_for
from tagwarden.registry.native import NativeClient
from tagwarden.testing import FakeClock, FakeRegistry
from tests.factories import make_settings

URL = "http://127.0.0.1:5061"


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry(clock=FakeClock(), pull_limit=None)
    fake.add_repository("ns/app", 120, with_latest=True)
    return fake


@pytest.fixture
async def http(fake: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=URL) as client:
        yield client


async def test_quay_pages_dates_and_errors(http: httpx.AsyncClient) -> None:
    first = (await http.get("/api/v1/repository/ns/app/tag/")).json()
    assert len(first["tags"]) == 50  # the default limit
    assert first["has_additional"] is True
    assert first["tags"][0]["last_modified"].endswith(" -0000")
    assert {"manifest_digest", "start_ts", "size", "is_manifest_list"} <= set(first["tags"][0])
    big = (await http.get("/api/v1/repository/ns/app/tag/?limit=500&page=2")).json()
    assert len(big["tags"]) == 21  # clamped to 100 a page: 121 tags, 21 on page 2
    assert big["has_additional"] is False
    bad = await http.get("/api/v1/repository/ns/app/tag/?filter_tag_name=sub:1")
    assert bad.status_code == 400
    missing = await http.get("/api/v1/repository/ns/none/tag/")
    assert missing.status_code == 404
    assert set(missing.json()) == {"detail", "error_message", "error_type", "title", "type",
                                   "status"}  # fmt: skip


async def test_harbor_link_total_and_double_encoded_names(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("proj/a/b", 25)
    response = await http.get("/api/v2.0/projects/proj/repositories/a%252Fb/artifacts?page=2")
    assert response.headers["X-Total-Count"] == "25"
    prev, nxt = response.headers["Link"].split(" , ")
    assert prev.endswith('rel="prev"')
    assert nxt.startswith("</api/v2.0/projects/proj/repositories/a%252Fb/artifacts?page=3")
    [artifact, *_] = response.json()
    assert artifact["pull_time"].startswith("0001-01-01")
    assert "scan_overview" not in artifact  # only with_scan_overview=true
    assert [r["platform"]["architecture"] for r in artifact["references"]] == [
        "amd64", "arm64", "arm"
    ]  # fmt: skip


async def test_github_auth_owner_kinds_and_rate_limit_headers(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    path = "/orgs/ns/packages/container/app/versions"
    anonymous = await http.get(path)
    assert anonymous.status_code == 401
    headers = {"Authorization": f"Bearer {fake.native.add_api_token('octo')}"}
    response = await http.get(path, headers=headers)
    assert response.headers["x-ratelimit-limit"] == "5000"
    assert response.headers["x-ratelimit-used"] == "2"
    assert len(response.json()) == 30  # per_page's default
    assert "/organizations/" in response.links["next"]["url"]
    wrong_kind = await http.get("/users/ns/packages/container/app/versions", headers=headers)
    assert wrong_kind.status_code == 404
    assert wrong_kind.json()["message"] == "Package not found."


@pytest.mark.parametrize("kind", ["quay", "harbor", "github"])
async def test_faults_reach_the_native_routes(fake: FakeRegistry, kind: str) -> None:
    token = fake.native.add_api_token("octo")
    fake.add_user("octo", token)
    entry = RegistryCredentials(url=URL, kind=kind, api_url=URL, username="octo",
                                token=SecretStr(token))  # fmt: skip
    settings = make_settings(registries={"127.0.0.1:5061": entry})
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        c = client_for("127.0.0.1:5061", settings, http, state=RegistryState(clock=fake.clock))
        assert isinstance(c, NativeClient)
        fake.faults.fail_next(2, kind=kind)  # a 5xx burst is retried
        fake.faults.force_429(5, kind=kind)  # a 429 with Retry-After is waited out
        assert len([t async for t in c.iter_tags("ns/app", {})]) == 121
        assert fake.stats.count(kind, status=503) == 2
        assert fake.stats.count(kind, status=429) >= 1
        fake.faults.reset()
        fake.faults.malform("/*", kind=kind)
        with pytest.raises(MalformedResponse):
            _ = [t async for t in c.iter_tags("ns/app", {})]
