"""What the Hub API says of a tag, kept; and Hub entries without a top-level digest, on real
Hub API bodies (../shared/fixtures/realworld) and on the fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagwarden.config import Settings
from tagwarden.platforms import normalise_architecture
from tagwarden.registry import DockerHubClient, RemoteTag
from tagwarden.registry.allowlist import hop_refusal, trusted_netlocs
from tagwarden.registry.dockerhub import parse_hub_tag
from tagwarden.registry.factory import client_for
from tagwarden.registry.manifests import DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from tagwarden.registry.transport import RegistryState
from tagwarden.testing import RegistryHarness, registry_harness
from tagwarden.testing.fake_hub import FAKE_PUSHER
from tests.factories import make_settings


def _realworld() -> Path | None:
    """``../shared/fixtures/realworld`` of the checkout (a worktree sits one level deeper)."""
    for parent in Path(__file__).resolve().parents[2].parents:
        candidate = parent / "shared" / "fixtures" / "realworld"
        if candidate.is_dir():
            return candidate
    return None


REALWORLD = _realworld()
needs_realworld = pytest.mark.skipif(
    REALWORLD is None, reason="../shared/fixtures/realworld is absent: real Hub bodies not tested"
)


def hub_body(name: str) -> Any:
    assert REALWORLD is not None
    return json.loads((REALWORLD / "hub" / name).read_text())


@pytest.fixture
async def h() -> AsyncIterator[RegistryHarness]:
    async with registry_harness() as harness:
        yield harness


async def scan(client: DockerHubClient, repo: str, known: dict[str, str | None]) -> list[RemoteTag]:
    return [tag async for tag in client.iter_tags(repo, known)]


# -- real Hub API bodies ---------------------------------------------------------------------


@needs_realworld
def test_2021_single_arch_entries_without_digest_take_their_only_images_digest() -> None:
    entries = hub_body("spinnaker_lab_results.json")
    assert len(entries) == 6

    for item in entries:
        assert "digest" not in item  # the capture's shape: nothing at the top level
        tag = parse_hub_tag(item)
        (image,) = item["images"]
        assert tag.digest == image["digest"]
        assert [(p.architecture, p.os, p.size) for p in tag.platforms] == [
            ("amd64", "linux", image["size"])
        ]
        assert tag.full_size == item["full_size"]
        assert tag.pushed_by == "marqaaron"
        assert tag.media_type is None  # not in 2021's bodies, and not guessed


@needs_realworld
@pytest.mark.parametrize("name", ["rust_1.44.0-slim.json", "rust_1.44.1-slim.json"])
def test_a_multi_arch_entry_without_digest_keeps_its_platforms_and_names_no_digest(
    name: str,
) -> None:
    item = hub_body(name)
    assert "digest" not in item

    tag = parse_hub_tag(item)

    # Not images[0].digest: that is amd64's manifest, not the manifest list a pull resolves.
    assert tag.digest is None
    assert tag.architectures == ["386", "amd64", "arm/v7", "arm64"]
    assert tag.platform_digests == {
        normalise_architecture(i["architecture"], i["variant"]): i["digest"] for i in item["images"]
    }
    assert {p.architecture: (p.os, p.size) for p in tag.platforms} == {
        normalise_architecture(i["architecture"], i["variant"]): ("linux", i["size"])
        for i in item["images"]
    }
    assert tag.media_type == DOCKER_MANIFEST_LIST
    assert tag.full_size == 0  # what the Hub says of these, kept as said
    assert tag.pushed_by == "doijanky"


@needs_realworld
def test_entries_with_a_digest_keep_it_and_what_the_hub_says_of_them() -> None:
    k3s = parse_hub_tag(hub_body("k3s_v1.25.14-k3s1.json"))
    assert k3s.digest == "sha256:5f7b660e6f2a6dd712350a8f1fd5ad6beafd62a06df5e2f46e432e6f151652fc"
    assert (k3s.full_size, k3s.media_type, k3s.pushed_by) == (
        77338322,
        DOCKER_MANIFEST_LIST,
        "ks3serviceaccount",
    )
    assert {p.architecture: p.size for p in k3s.platforms}["s390x"] == 74795527

    (entry,) = hub_body("ubuntu_devel_page.json")["results"]
    devel = parse_hub_tag(entry)
    assert devel.digest == entry["digest"]
    assert (devel.full_size, devel.media_type, devel.pushed_by) == (
        34157024,
        OCI_INDEX,
        "doijanky",
    )
    assert {p.architecture: p.os for p in devel.platforms}["riscv64"] == "linux"


@needs_realworld
async def test_the_rust_entries_are_named_by_one_registry_head_each_with_a_bearer_token() -> None:
    """Docker Hub's shape, on loopback: the Hub API lists the real rust bodies; its registry
    answers a HEAD with a bearer challenge, its token endpoint with a token."""
    bodies = [hub_body("rust_1.44.1-slim.json"), hub_body("rust_1.44.0-slim.json")]
    index = {"1.44.0-slim": "sha256:" + "0" * 64, "1.44.1-slim": "sha256:" + "1" * 64}
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        path = request.url.path
        if request.url.port == 4010 and path == "/v2/repositories/library/rust/tags/":
            page = {"count": 2, "next": None, "previous": None, "results": bodies}
            return httpx.Response(200, json=page)
        if request.url.port == 4011 and path == "/token":
            assert request.url.params["scope"] == "repository:library/rust:pull"
            return httpx.Response(200, json={"token": "t0k3n", "expires_in": 300})
        if request.url.port == 4011 and path.startswith("/v2/library/rust/manifests/"):
            if request.headers.get("authorization") != "Bearer t0k3n":
                challenge = (
                    'Bearer realm="http://127.0.0.1:4011/token",service="registry.docker.io"'
                )
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
            digest = index[path.rsplit("/", 1)[1]]
            return httpx.Response(200, headers={"Docker-Content-Digest": digest})
        return httpx.Response(404)

    settings = make_settings(
        dockerhub_api_url="http://127.0.0.1:4010",
        dockerhub_registry_url="http://127.0.0.1:4011",
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = client_for("docker.io", settings, http, state=RegistryState())
        assert isinstance(client, DockerHubClient)
        listed = await scan(client, "library/rust", {})
        assert [(t.name, t.digest) for t in listed] == [
            ("1.44.1-slim", None),
            ("1.44.0-slim", None),
        ]
        assert len(sent) == 1  # listing asks the registry nothing

        assert await client.tag_digest("library/rust", "1.44.0-slim") == index["1.44.0-slim"]
        heads = [r for r in sent if r.method == "HEAD"]
        assert [r.url.path for r in heads] == ["/v2/library/rust/manifests/1.44.0-slim"] * 2
        assert "authorization" not in heads[0].headers  # the challenge, answered once
        assert [r.url.path for r in sent if r.method == "GET"][1:] == ["/token"]

        sent.clear()
        assert await client.tag_digest("library/rust", "1.44.1-slim") == index["1.44.1-slim"]
        assert [(r.method, r.url.path) for r in sent] == [
            ("HEAD", "/v2/library/rust/manifests/1.44.1-slim")  # token cached: one request
        ]


def test_docker_hubs_token_realm_passes_the_allow_list() -> None:
    settings = Settings()
    assert settings.dockerhub_registry_url == "https://registry-1.docker.io"
    assert (
        hop_refusal(
            settings.dockerhub_registry_url,
            "https://auth.docker.io/token",
            trusted_netlocs(settings),
        )
        is None
    )


def test_the_registry_url_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGWARDEN_DOCKERHUB_REGISTRY_URL", "http://127.0.0.1:4011")
    assert Settings().dockerhub_registry_url == "http://127.0.0.1:4011"


# -- the fake: its Hub API leaves the digest out, its registry API names it ------------------


async def test_a_digest_less_multi_arch_tag_is_named_by_one_head_on_the_registry(
    h: RegistryHarness,
) -> None:
    repo = h.fake.add_repository("library/rust", 3, hub_digests=False)
    client = h.hub()
    listed = await scan(client, "library/rust", {})
    assert all(t.digest is None and len(t.platforms) == 3 for t in listed)
    assert h.fake.stats.count("oci") == 0
    newest = listed[0]

    digest = await client.tag_digest("library/rust", newest.name)

    assert digest == repo.tags[newest.name].artifact.digest  # the index, not a platform
    assert h.fake.stats.count("oci_manifest", "HEAD", status=200) == 1
    assert h.fake.stats.count("oci_manifest", "GET") == 0  # no pull spent


async def test_a_digest_less_single_arch_tag_needs_no_request(h: RegistryHarness) -> None:
    repo = h.fake.add_repository(
        "acme/lab", 2, platforms=["linux/amd64"], attestations=False, hub_digests=False
    )

    listed = await scan(h.hub(), "acme/lab", {})

    assert [t.digest for t in listed] == [
        repo.tags[t.name].artifact.images[0].digest for t in listed
    ]
    assert [t.digest for t in listed] == [repo.tags[t.name].artifact.digest for t in listed]
    assert h.fake.stats.count("oci") == 0


async def test_a_rescan_stops_at_a_known_digest_less_tag_after_one_request(
    h: RegistryHarness,
) -> None:
    h.fake.add_repository("library/rust", 250, hub_digests=False)
    client = h.hub()
    first = await scan(client, "library/rust", {})
    known: dict[str, str | None] = {t.name: t.digest for t in first}
    known[first[0].name] = await client.tag_digest("library/rust", first[0].name)  # requested
    h.fake.stats.reset()

    again = await scan(client, "library/rust", known)

    assert [t.name for t in again] == [first[0].name]
    assert h.fake.stats.count() == 1


async def test_the_fake_hub_says_who_pushed_and_the_sizes(h: RegistryHarness) -> None:
    repo = h.fake.add_repository("grafana/grafana", 1)
    (tag,) = await scan(h.hub(), "grafana/grafana", {})
    record = repo.tags[tag.name]
    assert tag.pushed_by == FAKE_PUSHER
    assert tag.media_type == record.artifact.media_type == OCI_INDEX
    assert tag.full_size == sum(i.size for i in record.artifact.images)
    assert {p.architecture: (p.os, p.size) for p in tag.platforms} == {
        i.spec.key[1]: ("linux", i.size) for i in record.artifact.images
    }


async def test_an_oci_tag_says_its_media_type_and_only_the_sizes_already_fetched(
    h: RegistryHarness,
) -> None:
    repo = h.fake.add_repository("acme/multi", 1, attestations=False)
    h.fake.add_repository("acme/single", 1, platforms=["linux/arm64/v8"], attestations=False)
    client = h.oci()

    (multi,) = [t async for t in client.iter_tags("acme/multi", {})]
    multi = await client.resolve_tag("acme/multi", multi.name)
    single = await client.resolve_tag("acme/single", "1.0.0")

    assert multi.media_type == OCI_INDEX
    amd64 = next(i for i in repo.tags[multi.name].artifact.images if i.spec.architecture == "amd64")
    # The representative platform's manifest was fetched to date the tag; the others were not.
    assert {p.architecture: (p.os, p.size) for p in multi.platforms} == {
        "amd64": ("linux", amd64.size),
        "arm64": ("linux", None),
        "arm/v7": ("linux", None),
    }
    assert (multi.full_size, multi.pushed_by) == (None, None)
    assert single.media_type == OCI_MANIFEST
    assert [(p.architecture, p.os) for p in single.platforms] == [("arm64", "linux")]
    assert single.full_size == single.platforms[0].size
    assert single.full_size is not None
    assert single.full_size > 0
    assert single.pushed_by is None
