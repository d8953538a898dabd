"""Inbound webhooks against the fake registry, on both databases: a push is a hint to check."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.webhooks.service import valid_signature
from tests.factories import make_settings

HUB = "http://hub.fake"
SECRET = "hub-secret-0123456789abcdef"
GITHUB_SECRET = "github-secret-0123456789"


def dockerhub_payload(repo_name: str, tag: str) -> dict[str, Any]:
    """Docker Hub's documented push payload (REGISTRY_FACTS §4), with our repository and tag."""
    namespace, _, name = repo_name.rpartition("/")
    return {
        "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": tag},
        "repository": {
            "comment_count": 0,
            "date_created": 1417494799,
            "description": "",
            "is_official": namespace == "library",
            "is_private": False,
            "is_trusted": True,
            "name": name,
            "namespace": namespace,
            "owner": namespace,
            "repo_name": repo_name,
            "repo_url": f"https://registry.hub.docker.com/u/{repo_name}/",
            "star_count": 0,
            "status": "Active",
        },
    }


def github_payload(package_url: str, tag: str) -> dict[str, Any]:
    return {
        "action": "published",
        "package": {
            "id": 10696,
            "name": "hello-world",
            "namespace": "Codertocat/hello-world",
            "ecosystem": "docker",
            "package_type": "CONTAINER",
            "owner": {"login": "Codertocat"},
            "package_version": {
                "id": 57755790,
                "version": "sha256:3da1",
                "container_metadata": {"tag": {"name": tag, "digest": "sha256:6c62"}},
                "package_url": package_url,
            },
            "registry": {"name": "GitHub CONTAINER registry", "url": "https://ghcr.io/Codertocat"},
        },
    }


@dataclass
class World:
    fake: FakeRegistry
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]

    async def add_image(self, name: str, namespace: str = "library", **extra: Any) -> int:
        body = {"image_name": name, "namespace": namespace, **extra}
        response = await self.client.post("/api/v1/images", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def requests(self) -> list[ApprovalRequest]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(ApprovalRequest))).all())


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    fake = FakeRegistry(clock=FakeClock())
    configured = make_settings(
        settings.database_url,
        dockerhub_api_url=HUB,
        webhook_secret=SecretStr(SECRET),
        github_webhook_secret=SecretStr(GITHUB_SECRET),
        registries={"ghcr.io": RegistryCredentials(url="http://ghcr.fake")},
    )
    app = create_app(configured, registry_transport=fake.transport())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield World(fake, client, sessionmaker, tokens.headers("admin"))


async def test_a_docker_hub_push_triggers_a_check_that_creates_the_approval_request(
    world: World,
) -> None:
    world.fake.add_repository("library/redis", 3)
    image_id = await world.add_image("redis")
    pushed = world.fake.push_tag("library/redis", "7.2.5-alpine")

    response = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{SECRET}",
        json=dockerhub_payload("library/redis", "7.2.5-alpine"),
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["results"] == [
        {
            "registry": "docker.io",
            "repository": "library/redis",
            "tag": "7.2.5-alpine",
            "image_id": image_id,
            "status": "checked",
            "reason": None,
            "requests_created": ["7.2.5-alpine"],
            "error": None,
        }
    ]
    [request] = await world.requests()
    # The digest came from the registry, not from the payload (which carries none).
    assert (request.tag_name, request.digest) == ("7.2.5-alpine", pushed.artifact.digest)
    assert world.fake.stats.count("hub_tags") == 1


async def test_official_images_may_be_named_without_library(world: World) -> None:
    world.fake.add_repository("library/nginx", 2)
    await world.add_image("nginx")
    response = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{SECRET}", json=dockerhub_payload("nginx", "1.0.1")
    )
    assert response.json()["results"][0]["status"] == "checked"


@pytest.mark.parametrize("secret", ["wrong-secret-0123456789abcdef", SECRET[:-1], "x"])
async def test_a_wrong_secret_is_refused_and_nothing_is_created(world: World, secret: str) -> None:
    world.fake.add_repository("library/redis", 3)
    await world.add_image("redis")

    response = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{secret}", json=dockerhub_payload("library/redis", "1.0.2")
    )

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert await world.requests() == []
    assert world.fake.stats.count("hub_tags") == 0
    async with world.sessionmaker() as session:
        webhook_audits = await session.scalar(
            select(func.count()).where(AuditEntry.action == "webhook.received")
        )
    assert webhook_audits == 0


async def test_an_image_may_have_its_own_docker_hub_secret(world: World) -> None:
    world.fake.add_repository("grafana/grafana", 2)
    image_id = await world.add_image("grafana", namespace="grafana")
    own = "grafana-only-secret-0123456789"
    policy = await world.client.put(
        f"/api/v1/images/{image_id}/policy", json={"webhook_secret": own}, headers=world.admin
    )
    assert policy.json()["webhook_secret_set"] is True

    ok = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{own}", json=dockerhub_payload("grafana/grafana", "1.0.1")
    )
    assert ok.status_code == 202
    assert ok.json()["results"][0]["status"] == "checked"
    # The image's secret opens only its own image.
    world.fake.add_repository("library/redis", 2)
    await world.add_image("redis")
    other = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{own}", json=dockerhub_payload("library/redis", "1.0.1")
    )
    assert other.status_code == 401


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("absent", "docker.io/library/mystery is not in the catalogue"),
        ("pending", "image mystery is pending; only approved images are checked"),
    ],
)
async def test_an_unknown_or_unapproved_image_is_accepted_with_the_reason_and_nothing_happens(
    world: World, tokens: Any, setup: str, reason: str
) -> None:
    world.fake.add_repository("library/mystery", 2)
    if setup == "pending":  # a viewer's image waits for an admin
        added = await world.client.post(
            "/api/v1/images", json={"image_name": "mystery"}, headers=tokens.headers("viewer")
        )
        assert added.json()["approval_status"] == "pending"
    before = len(await world.requests())

    response = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{SECRET}", json=dockerhub_payload("library/mystery", "1.0.1")
    )

    assert response.status_code == 202
    [result] = response.json()["results"]
    assert result["status"] == "ignored"
    assert result["reason"].startswith(reason)
    assert len(await world.requests()) == before
    assert world.fake.stats.count("hub_tags") == 0


async def test_a_malformed_payload_with_the_right_secret_is_a_422(world: World) -> None:
    response = await world.client.post(
        f"/api/v1/webhooks/dockerhub/{SECRET}", content=b'{"push_data": {}}'
    )
    assert response.status_code == 422
    assert "repository" in response.json()["detail"]


def _signed(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_github_signature_matches_githubs_documented_test_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    secret = SecretStr("It's a Secret to Everybody")
    assert valid_signature(b"Hello, World!", expected, secret)
    assert not valid_signature(b"Hello, World?", expected, secret)
    assert not valid_signature(b"Hello, World!", expected.removeprefix("sha256="), secret)


async def test_a_signed_github_package_event_triggers_a_check(world: World) -> None:
    world.fake.add_repository("codertocat/hello-world", 2)
    image_id = await world.add_image("hello-world", namespace="codertocat", registry="ghcr.io")
    world.fake.push_tag("codertocat/hello-world", "2.0.0")
    body = json.dumps(github_payload("ghcr.io/codertocat/hello-world:2.0.0", "2.0.0")).encode()

    response = await world.client.post(
        "/api/v1/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "package", "X-Hub-Signature-256": _signed(body)},
    )

    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert (result["image_id"], result["requests_created"]) == (image_id, ["2.0.0"])


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, "sha1=abc", "tampered"],
)
async def test_a_bad_or_missing_github_signature_is_refused(
    world: World, signature: str | None
) -> None:
    world.fake.add_repository("codertocat/hello-world", 2)
    await world.add_image("hello-world", namespace="codertocat", registry="ghcr.io")
    body = json.dumps(github_payload("ghcr.io/codertocat/hello-world:1.0.1", "1.0.1")).encode()
    headers = {"X-GitHub-Event": "package"}
    if signature == "tampered":
        signature = _signed(body + b" ")
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature

    response = await world.client.post("/api/v1/webhooks/github", content=body, headers=headers)

    assert response.status_code == 401
    assert await world.requests() == []


async def test_github_events_that_are_not_container_pushes_change_nothing(world: World) -> None:
    body = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
    response = await world.client.post(
        "/api/v1/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": _signed(body)},
    )
    assert response.status_code == 202
    assert response.json() == {"message": "nothing to check", "results": []}


def distribution_envelope(host: str, repository: str, tag: str) -> dict[str, Any]:
    target = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": "sha256:" + "1" * 64,
        "repository": repository,
        "url": f"http://{host}/v2/{repository}/manifests/sha256:{'1' * 64}",
        "tag": tag,
    }
    return {
        "events": [
            {"id": "a", "action": "pull", "target": target, "request": {"host": host}},
            {"id": "b", "action": "push", "target": {**target, "tag": None}},
            {"id": "c", "action": "push", "target": target, "request": {"host": host}},
        ]
    }


@pytest.mark.parametrize("authorization", [f"Bearer {SECRET}", f"bearer {SECRET}", SECRET])
async def test_a_registry_notification_with_the_bearer_secret_triggers_a_check(
    world: World, authorization: str
) -> None:
    world.fake.add_repository("codertocat/hello-world", 2)
    await world.add_image("hello-world", namespace="codertocat", registry="ghcr.io")
    world.fake.push_tag("codertocat/hello-world", "3.0.0")
    response = await world.client.post(
        "/api/v1/webhooks/registry",
        json=distribution_envelope("ghcr.fake", "codertocat/hello-world", "3.0.0"),
        headers={
            "Authorization": authorization,
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
    )
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]  # the pull and the digest-only push are not pushes
    assert result["requests_created"] == ["3.0.0"]


@pytest.mark.parametrize("authorization", [None, "Bearer nope", f"Basic {SECRET}x", ""])
async def test_a_registry_notification_without_the_secret_is_refused(
    world: World, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await world.client.post(
        "/api/v1/webhooks/registry",
        json=distribution_envelope("ghcr.fake", "codertocat/hello-world", "3.0.0"),
        headers=headers,
    )
    assert response.status_code == 401
    assert await world.requests() == []


async def test_harbor_push_events_are_understood(world: World) -> None:
    world.fake.add_repository("codertocat/hello-world", 2)
    await world.add_image("hello-world", namespace="codertocat", registry="ghcr.io")
    world.fake.push_tag("codertocat/hello-world", "4.0.0")
    harbor = {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1680501893,
        "operator": "admin",
        "event_data": {
            "resources": [
                {
                    "digest": "sha256:abc",
                    "tag": "4.0.0",
                    "resource_url": "ghcr.io/codertocat/hello-world:4.0.0",
                }
            ],
            "repository": {"name": "hello-world", "namespace": "codertocat",
                           "repo_full_name": "codertocat/hello-world"},
        },
    }  # fmt: skip
    response = await world.client.post(
        "/api/v1/webhooks/registry", json=harbor, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["requests_created"] == ["4.0.0"]


async def test_webhooks_are_refused_while_no_secret_is_configured(
    client: httpx.AsyncClient,
) -> None:
    # The shared fixture's settings set no TAGWARDEN_WEBHOOK_SECRET.
    hub = await client.post(
        "/api/v1/webhooks/dockerhub/anything-at-all-0123456789",
        json=dockerhub_payload("library/redis", "1"),
    )
    registry = await client.post(
        "/api/v1/webhooks/registry", json={"events": []}, headers={"Authorization": "Bearer "}
    )
    assert (hub.status_code, registry.status_code) == (401, 401)
