"""Quay, Harbor and GitHub Packages listing against the fake, chosen by the registry's kind:
discovery, paging, dates, sizes, platforms, evidence, and the fall back to /v2 when refused.

Every host is a loopback address served in-process by the fake (never dialled)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tagwarden.config import RegistryCredentials
from tagwarden.registry import RateLimited, RegistryState, RemoteTag, client_for
from tagwarden.registry.github import GitHubClient
from tagwarden.registry.harbor import HarborClient, artifacts_path
from tagwarden.registry.native import NativeClient
from tagwarden.registry.quay import QuayClient, quay_date
from tagwarden.testing import FakeClock, FakeRegistry
from tests.factories import make_settings

HOST = "127.0.0.1:5071"
URL = f"http://{HOST}"
API = "http://127.0.0.1:5072"  # GitHub's API is on another host than its registry


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry(clock=FakeClock(), pull_limit=None)


@pytest.fixture
async def http(fake: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


def client(http: httpx.AsyncClient, fake: FakeRegistry, **entry: Any) -> NativeClient:
    settings = make_settings(registries={HOST: RegistryCredentials(url=URL, **entry)})
    made = client_for(HOST, settings, http, state=RegistryState(clock=fake.clock))
    assert isinstance(made, NativeClient)
    return made


async def listing(c: NativeClient, repo: str) -> list[RemoteTag]:
    return [t async for t in c.iter_tags(repo, {})]


def pushed(fake: FakeRegistry, repo: str, tag: str) -> Any:
    return fake.model.repository(repo).tags[tag].last_updated


# -- Quay ------------------------------------------------------------------------------------


async def test_quay_lists_newest_first_in_pages_of_100_with_push_dates_and_sizes(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("coreos/etcd", 250)
    c = client(http, fake, kind="quay")
    assert isinstance(c, QuayClient)
    tags = await listing(c, "coreos/etcd")

    records = fake.model.repository("coreos/etcd").newest_first()
    assert [t.name for t in tags] == [r.name for r in records]
    assert [t.digest for t in tags] == [r.artifact.digest for r in records]
    first = tags[0]
    # Quay's date is whole seconds of the push, never the image's created (5 minutes before).
    assert first.last_updated == records[0].last_updated.replace(microsecond=0)
    assert first.full_size == sum(i.size for i in records[0].artifact.images)
    assert first.media_type is not None
    assert not first.resolved
    pages = fake.stats.matching("quay_tags")
    assert len(pages) == 3
    assert fake.stats.count("oci") == 0
    assert all("limit=100" in p.query and "onlyActiveTags=true" in p.query for p in pages)


async def test_quay_tag_resolved_through_v2_keeps_the_quay_push_date(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("coreos/etcd", 3, platforms=["linux/amd64", "linux/arm64/v8"])
    c = client(http, fake, kind="quay")
    [newest, *_] = await listing(c, "coreos/etcd")
    resolved = await c.resolve_tag("coreos/etcd", newest.name)
    assert resolved.architectures == ["amd64", "arm64"]
    assert resolved.last_updated == newest.last_updated
    assert resolved.full_size == newest.full_size


async def test_quay_private_repository_with_oauth_token_and_anonymous_fallback_to_v2(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("acme/secret", 5, private=True)
    fake.add_user("acme+robot", "robot-token")
    oauth = fake.native.add_api_token("acme")
    with_token = client(http, fake, kind="quay", token=SecretStr(oauth))
    assert len(await listing(with_token, "acme/secret")) == 5
    assert fake.stats.count("quay_tags", status=200) == 1

    # A robot account only works on /v2: the API says 401, the listing goes through tags/list.
    fake.stats.reset()
    robot = client(http, fake, kind="quay", username="acme+robot",
                   password=SecretStr("robot-token"))  # fmt: skip
    tags = await listing(robot, "acme/secret")
    assert sorted(t.name for t in tags) == sorted(fake.model.repository("acme/secret").tags)
    assert fake.stats.count("quay_tags", status=401) == 1
    assert fake.stats.count("oci_tags", status=200) == 1
    assert robot.fell_back == {"acme/secret"}


def test_quay_dates_are_rfc_2822_with_an_unknown_zone() -> None:
    when = quay_date("Thu, 02 Nov 2023 10:00:00 -0000")
    assert when is not None
    assert when.isoformat() == "2023-11-02T10:00:00+00:00"


# -- Harbor ----------------------------------------------------------------------------------


async def test_harbor_lists_artifacts_with_platforms_sizes_dates_and_scan_evidence(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("proj/team/app", 150, with_latest=True)
    c = client(http, fake, kind="harbor")
    assert isinstance(c, HarborClient)
    tags = await listing(c, "proj/team/app")

    assert len(tags) == 151
    by_name = {t.name: t for t in tags}
    repo = fake.model.repository("proj/team/app")
    newest = repo.newest_first()[0]
    latest = by_name["latest"]
    assert latest.digest == by_name[newest.name].digest == newest.artifact.digest
    assert latest.resolved
    assert latest.architectures == ["amd64", "arm/v7", "arm64"]
    assert latest.platform_digests["amd64"] == newest.artifact.images[0].digest
    assert latest.last_updated is not None
    assert latest.last_updated.replace(microsecond=0) == pushed(
        fake, "proj/team/app", "latest"
    ).replace(microsecond=0)
    assert latest.full_size
    assert latest.full_size > 0
    assert latest.evidence is not None
    assert "scan_overview" in latest.evidence
    pages = fake.stats.matching("harbor_artifacts")
    assert len(pages) == 2
    assert fake.stats.count("oci") == 0
    # The repository part is encoded twice, as Harbor's router wants.
    assert "team%252Fapp" in artifacts_path("proj/team/app")


async def test_harbor_single_image_platform_from_extra_attrs_with_a_robot_account(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("proj/tool", 2, platforms=["linux/arm64/v8"], private=True)
    fake.add_user("robot$proj+ci", "s3cret-robot")
    c = client(http, fake, kind="harbor", username="robot$proj+ci",
               password=SecretStr("s3cret-robot"))  # fmt: skip
    tags = await listing(c, "proj/tool")
    assert [t.architectures for t in tags] == [["arm64"], ["arm64"]]
    assert tags[0].platforms[0].size == tags[0].full_size
    assert tags[0].evidence is not None
    assert tags[0].evidence["extra_attrs"]["os"] == "linux"
    assert fake.stats.matching("harbor_artifacts")[0].username == "robot$proj+ci"


async def test_harbor_api_switched_off_falls_back_to_v2(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("proj/app", 4)
    fake.native.disabled.add("harbor_artifacts")
    c = client(http, fake, kind="harbor")
    tags = await listing(c, "proj/app")
    assert len(tags) == 4
    assert not any(t.resolved for t in tags)
    assert fake.stats.count("harbor_artifacts", status=404) == 1
    assert fake.stats.count("oci_tags", status=200) == 1


# -- GitHub ----------------------------------------------------------------------------------


async def test_github_versions_of_an_org_package_follow_the_organizations_links(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("acme/app", 120, platforms=["linux/amd64"], with_latest=True)
    pat = fake.native.add_api_token("octocat")
    c = client(http, fake, kind="github", api_url=API, token=SecretStr(pat))
    assert isinstance(c, GitHubClient)
    tags = await listing(c, "acme/app")

    assert len(tags) == 121
    by_name = {t.name: t for t in tags}
    newest = fake.model.repository("acme/app").newest_first()[0]
    assert by_name["latest"].digest == newest.artifact.digest
    assert by_name["latest"].last_updated == newest.last_updated.replace(microsecond=0)
    pages = fake.stats.matching("github_versions")
    assert [p.path.split("/")[1] for p in pages] == ["orgs", "organizations"]
    assert fake.stats.count("oci") == 0


async def test_github_user_package_is_found_once_and_untagged_children_are_skipped(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("octocat/tool", 3)  # three platforms: their manifests are versions too
    fake.native.github_users.add("octocat")
    pat = fake.native.add_api_token("octocat")
    fake.add_user("octocat", pat)  # ghcr.io's /v2 takes the same token as a password
    c = client(http, fake, kind="github", api_url=API, username="octocat", token=SecretStr(pat))
    first = await listing(c, "octocat/tool")
    assert len(first) == 3
    again = await listing(c, "octocat/tool")
    assert [t.name for t in again] == [t.name for t in first]
    kinds = [(p.path.split("/")[1], p.status) for p in fake.stats.matching("github_versions")]
    assert kinds == [("orgs", 404), ("users", 200), ("users", 200)]
    resolved = await c.resolve_tag("octocat/tool", first[0].name)
    assert resolved.architectures == ["amd64", "arm/v7", "arm64"]
    assert resolved.last_updated == first[0].last_updated


async def test_github_without_a_token_asks_v2_only_and_a_bad_token_falls_back(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("acme/app", 3)
    await listing(client(http, fake, kind="github", api_url=API), "acme/app")
    assert fake.stats.count("github") == 0
    assert fake.stats.count("oci_tags", status=200) == 1
    fake.stats.reset()
    # A token the registry takes but the Packages API does not (not its scope, revoked there).
    fake.add_user("octocat", "ghp_registry_only")
    bad = client(http, fake, kind="github", api_url=API, username="octocat",
                 token=SecretStr("ghp_registry_only"))  # fmt: skip
    assert len(await listing(bad, "acme/app")) == 3
    assert fake.stats.count("github_versions", status=401) == 2  # asked once more, then /v2
    assert fake.stats.count("oci_tags", status=200) == 1


async def test_github_spent_rate_limit_is_a_wait_not_a_fallback(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("acme/app", 3)
    fake.native.github_rate_limit = 1
    pat = fake.native.add_api_token("octocat")
    c = client(http, fake, kind="github", api_url=API, token=SecretStr(pat))
    await listing(c, "acme/app")
    with pytest.raises(RateLimited) as caught:
        await listing(c, "acme/app")
    assert caught.value.retry_at > fake.model.now() + timedelta(minutes=30)
    assert caught.value.retry_at.tzinfo is UTC
    assert fake.stats.count("oci") == 0


async def test_quay_rescan_stops_at_the_first_tag_seen_unchanged(
    fake: FakeRegistry, http: httpx.AsyncClient
) -> None:
    fake.add_repository("coreos/etcd", 250)
    c = client(http, fake, kind="quay")
    known: dict[str, str | None] = {t.name: t.digest for t in await listing(c, "coreos/etcd")}
    fake.stats.reset()
    assert [t.name async for t in c.iter_tags("coreos/etcd", known)] == ["3.4.9"]
    assert fake.stats.count("quay_tags") == 1
    # A re-push is a new lifetime: it sorts first and is found, then paging stops again.
    fake.clock.advance(60)  # type: ignore[attr-defined]
    fake.repush_tag("coreos/etcd", "1.0.0")
    again = [t async for t in c.iter_tags("coreos/etcd", known)]
    assert [t.name for t in again] == ["1.0.0", "3.4.9"]
    assert again[0].digest != known["1.0.0"]
