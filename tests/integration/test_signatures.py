"""Signatures as evidence, against the fake registry's OCI 1.1 referrers (and its fallback
tag), on both databases: what a reviewer sees, and the policy's gates at approval, rules,
activation and rollout start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import Image
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.evidence.signatures import referrers_tag, signature_tag
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.notify.models import NotificationEvent
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import make_settings
from tests.signing import (
    EMPTY_CONFIG,
    OCI_INDEX,
    new_key,
    public_pem,
    signature_layer,
    signature_manifest,
)

HOST = "127.0.0.1:5999"  # served in-process by the fake registry's transport; never dialled
REPO = "team/app"
REFERENCE = f"{HOST}/{REPO}"


@dataclass
class World:
    fake: FakeRegistry
    clock: FakeClock
    monitor: ImageMonitor
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: Any
    image_id: int = 0

    def headers(self, role: str = "admin") -> dict[str, str]:
        return dict(self.tokens.headers(role))

    async def register_key(self, name: str, key: ec.EllipticCurvePrivateKey) -> None:
        answer = await self.client.post(
            "/api/v1/signing-keys",
            json={"name": name, "public_key": public_pem(key)},
            headers=self.headers(),
        )
        assert answer.status_code == 201, answer.text

    async def policy(self, **body: Any) -> None:
        answer = await self.client.put(
            f"/api/v1/images/{self.image_id}/policy", json=body, headers=self.headers()
        )
        assert answer.status_code == 200, answer.text

    def push(self, tag: str, platforms: list[str] | None = None) -> str:
        self.clock.advance(60)
        return self.fake.push_tag(REPO, tag, platforms=platforms).artifact.digest

    def sign(
        self,
        digest: str,
        key: ec.EllipticCurvePrivateKey,
        *,
        names: str | None = None,
        tamper: bool = False,
        as_tag: bool = False,
    ) -> str:
        """Attach a signature of ``names`` (default: ``digest`` itself) to ``digest``: as an
        OCI 1.1 referrer, or under cosign's ``.sig`` tag."""
        layer = signature_layer(key, names or digest, REFERENCE, tamper=tamper)
        blob = self.fake.put_blob(layer.blob)
        config = self.fake.put_blob(EMPTY_CONFIG)
        media_type, content = self.fake.model.manifests[digest]
        subject = None if as_tag else (digest, len(content), media_type)
        document = signature_manifest(
            [(blob, len(layer.blob), layer.annotations)], config, subject=subject
        )
        self.clock.advance(60)
        return self.fake.push_manifest(
            REPO, document, tag=signature_tag(digest) if as_tag else None
        )

    async def scan(self) -> ApprovalRequest:
        summary = await self.monitor.run_once(force=True)
        assert summary.errors == 0, [r.error for r in summary.results]
        async with self.sessionmaker() as session:
            rows = (
                await session.scalars(select(ApprovalRequest).order_by(ApprovalRequest.id.desc()))
            ).all()
        return rows[0]

    async def evidence(self, request_id: int) -> dict[str, Any]:
        answer = await self.client.get(
            f"/api/v1/images/approvals/{request_id}", headers=self.headers("viewer")
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["evidence"]["signature"]  # type: ignore[no-any-return]

    async def audit(self, action: str) -> list[AuditEntry]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
            return list(rows.all())


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    fake.add_repository(REPO, 0, platforms=["linux/amd64"])
    configured = make_settings(
        settings.database_url, registries={HOST: RegistryCredentials(url=f"http://{HOST}")}
    )
    app = create_app(configured, registry_transport=fake.transport())
    monitor: ImageMonitor = app.state.monitor
    monitor.state = RegistryState(clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        w = World(fake, clock, monitor, client, sessionmaker, tokens)
        async with sessionmaker() as session, session.begin():
            image = Image(
                image_name="app",
                namespace="team",
                registry_host=HOST,
                approval_status="approved",
                watch_for_updates=True,
            )
            session.add(image)
            await session.flush()
            w.image_id = image.id
        yield w


async def test_a_referrer_signature_by_a_registered_key_is_verified_and_shown(
    world: World,
) -> None:
    release = new_key()
    await world.register_key("release", release)
    digest = world.push("1.0.0")
    world.sign(digest, release)

    request = await world.scan()

    assert request.tag_name == "1.0.0"
    shown = await world.evidence(request.id)
    assert shown["status"] == "verified"
    assert shown["signers"] == ["release"]
    assert shown["signed_digest"] == digest
    assert shown["signed"] == "index"
    assert shown["reason"] is None
    assert shown["checked_at"]


async def test_signature_and_referrer_tags_are_never_image_tags(world: World) -> None:
    release = new_key()
    await world.register_key("release", release)
    digest = world.push("1.0.0")
    # Pushed after the image, so they are the newest tags: a first scan asks only about the
    # newest, and would ask about a signature if the monitor took it for an image.
    world.sign(digest, release, as_tag=True)
    world.fake.push_manifest(
        REPO,
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []},
        tag=referrers_tag(digest),
    )

    request = await world.scan()

    assert request.tag_name == "1.0.0"
    async with world.sessionmaker() as session:
        seen = set((await session.scalars(select(DiscoveredTag.tag))).all())
    assert seen == {"1.0.0"}
    assert (await world.evidence(request.id))["status"] == "verified"


async def test_an_unsigned_tag_is_shown_unsigned_and_announced(world: World) -> None:
    await world.register_key("release", new_key())
    channel = await world.client.post(
        "/api/v1/notifications/channels",
        json={
            "name": "security",
            "kind": "webhook",
            "config": {"url": "http://127.0.0.1:9/hook"},
            "events": ["tag.unsigned", "tag.signature_invalid"],
        },
        headers=world.headers(),
    )
    assert channel.status_code == 201, channel.text
    digest = world.push("1.0.0")

    request = await world.scan()

    shown = await world.evidence(request.id)
    assert shown["status"] == "unsigned"
    assert shown["signers"] == []
    async with world.sessionmaker() as session:
        events = (await session.scalars(select(NotificationEvent))).all()
    assert [
        (e.event, e.payload["image"], e.payload["tag"], e.payload["digest"]) for e in events
    ] == [("tag.unsigned", REFERENCE, "1.0.0", digest)]


async def test_a_signature_over_another_digest_is_invalid_with_digest_mismatch(
    world: World,
) -> None:
    release = new_key()
    await world.register_key("release", release)
    older = world.push("1.0.0")
    digest = world.push("1.1.0")
    # A genuine signature, of the older image, copied onto the newer one.
    world.sign(digest, release, names=older)

    request = await world.scan()

    shown = await world.evidence(request.id)
    assert (shown["status"], shown["reason"]) == ("invalid", "digest_mismatch")
    assert shown["signed_digest"] == older
    assert shown["signers"] == []


async def test_a_signature_by_an_unregistered_key_is_invalid_with_unknown_key(
    world: World,
) -> None:
    await world.register_key("release", new_key())
    digest = world.push("1.0.0")
    world.sign(digest, new_key())

    request = await world.scan()

    shown = await world.evidence(request.id)
    assert (shown["status"], shown["reason"]) == ("invalid", "unknown_key")


async def test_a_tampered_payload_is_invalid_with_bad_signature(world: World) -> None:
    release = new_key()
    await world.register_key("release", release)
    digest = world.push("1.0.0")
    world.sign(digest, release, tamper=True)

    request = await world.scan()

    shown = await world.evidence(request.id)
    assert (shown["status"], shown["reason"]) == ("invalid", "bad_signature")


async def test_a_multi_arch_image_signed_at_the_index_or_per_platform(world: World) -> None:
    release = new_key()
    await world.register_key("release", release)
    index = world.push("1.0.0", platforms=["linux/amd64", "linux/arm64/v8"])
    world.sign(index, release)
    first = await world.scan()
    shown = await world.evidence(first.id)
    assert (shown["status"], shown["signed"], shown["signed_digest"]) == (
        "verified",
        "index",
        index,
    )

    index = world.push("1.1.0", platforms=["linux/amd64", "linux/arm64/v8"])
    record = world.fake.model.repository(REPO).tags["1.1.0"]
    platforms = {i.spec.architecture: i.digest for i in record.artifact.images}
    world.sign(platforms["amd64"], release)
    # One platform signed is not the image signed.
    second = await world.scan()
    assert second.tag_name == "1.1.0"
    shown = await world.evidence(second.id)
    assert shown["status"] == "unsigned"
    assert "arm64" in shown["reason"]

    world.sign(platforms["arm64"], release)
    checked = await world.client.post(
        f"/api/v1/images/approvals/{second.id}/evidence", headers=world.headers("approver")
    )
    assert checked.status_code == 200, checked.text
    shown = checked.json()["signature"]
    assert (shown["status"], shown["signed"], shown["signers"]) == (
        "verified",
        "platforms",
        ["release"],
    )
    assert shown["platforms"] == platforms
    assert (await world.evidence(second.id)) == shown


async def test_the_fallback_tag_is_read_where_the_registry_has_no_referrers_api(
    world: World,
) -> None:
    world.fake.referrers_api = False
    release = new_key()
    await world.register_key("release", release)
    digest = world.push("1.0.0")
    signature = world.sign(digest, release)  # a referrer the registry cannot list
    media_type, content = world.fake.model.manifests[signature]
    world.fake.push_manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": media_type,
                    "digest": signature,
                    "size": len(content),
                    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                }
            ],
        },
        tag=referrers_tag(digest),
    )

    request = await world.scan()

    assert request.tag_name == "1.0.0"
    assert (await world.evidence(request.id))["status"] == "verified"
    assert world.fake.stats.count("oci_referrers") >= 1


async def test_enforce_refuses_approval_of_an_unsigned_tag(world: World) -> None:
    await world.register_key("release", new_key())
    await world.policy(signature={"mode": "enforce", "keys": ["release"], "min_signers": 1})
    world.push("1.0.0")
    request = await world.scan()

    refused = await world.client.post(
        f"/api/v1/images/approvals/{request.id}/approve", headers=world.headers("approver")
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "signature_required"
    async with world.sessionmaker() as session:
        again = await session.get(ApprovalRequest, request.id)
        assert again is not None
        assert again.status == "pending"


async def test_enforce_counts_only_the_policys_keys(world: World) -> None:
    release, other = new_key(), new_key()
    await world.register_key("release", release)
    await world.register_key("other", other)
    await world.policy(signature={"mode": "enforce", "keys": ["release"]})
    digest = world.push("1.0.0")
    world.sign(digest, other)
    request = await world.scan()
    assert (await world.evidence(request.id))["signers"] == ["other"]

    refused = await world.client.post(
        f"/api/v1/images/approvals/{request.id}/approve", headers=world.headers("approver")
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "signature_required"

    unknown = await world.client.put(
        f"/api/v1/images/{world.image_id}/policy",
        json={"signature": {"mode": "enforce", "keys": ["nobody"]}},
        headers=world.headers(),
    )
    assert unknown.status_code == 404
    assert "nobody" in unknown.json()["detail"]


async def test_a_rule_never_approves_a_tag_that_fails_the_policy(world: World) -> None:
    await world.register_key("release", new_key())
    await world.policy(signature={"mode": "warn"})
    rule = await world.client.post(
        f"/api/v1/images/{world.image_id}/rules",
        json={"name": "any", "kind": "regex", "pattern": ".*", "min_age_hours": 0},
        headers=world.headers(),
    )
    assert rule.status_code == 201, rule.text
    world.push("1.0.0")

    request = await world.scan()

    assert request.status == "pending"
    [failed] = await world.audit("approval.rule_failed")
    assert failed.after is not None
    assert failed.after["code"] == "signature_required"
    assert await world.audit("approval.approved") == []


async def test_warn_lets_a_person_approve_and_records_the_failed_check(world: World) -> None:
    await world.register_key("release", new_key())
    await world.policy(signature={"mode": "warn"})
    world.push("1.0.0")
    request = await world.scan()

    approved = await world.client.post(
        f"/api/v1/images/approvals/{request.id}/approve",
        json={"notes": "internal build, signed later"},
        headers=world.headers("approver"),
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    [entry] = await world.audit("approval.approved")
    assert entry.after is not None
    assert entry.after["failed_checks"] == [
        {"check": "signature", "mode": "warn", "failure": "signature unsigned"}
    ]


async def test_a_signature_deleted_after_approval_stops_the_rollout(world: World) -> None:
    release = new_key()
    await world.register_key("release", release)
    await world.policy(signature={"mode": "enforce", "keys": ["release"]})
    digest = world.push("1.0.0")
    signature = world.sign(digest, release)
    request = await world.scan()
    approved = await world.client.post(
        f"/api/v1/images/approvals/{request.id}/approve", headers=world.headers("approver")
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["processed_at"] is not None  # activated: image_tags rows exist
    device = await world.client.post(
        "/api/v1/devices",
        json={"uuid": "dev-1", "architecture": "amd64", "labels": {}},
        headers=world.headers(),
    )
    assert device.status_code == 201, device.text
    body = {
        "image_id": world.image_id,
        "tag": "1.0.0",
        "devices": ["dev-1"],
        "strategy": "all-at-once",
    }
    planned = await world.client.post(
        "/api/v1/rollouts", json=body | {"dry_run": True}, headers=world.headers("approver")
    )
    assert planned.status_code == 200, planned.text

    world.fake.delete_manifest(signature)
    refused = await world.client.post(
        "/api/v1/rollouts", json=body, headers=world.headers("approver")
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "signature_required"
    assert (await world.evidence(request.id))["status"] == "unsigned"
