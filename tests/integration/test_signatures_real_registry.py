"""Cosign's ``.sig`` tag scheme on a real registry: Debian's docker-registry (distribution 2.8,
no referrers API, so the fallback tag is looked for too), on both databases."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.auth import service as auth
from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.evidence.signatures import signature_tag
from tagwarden.monitor.models import DiscoveredTag
from tests.factories import make_settings
from tests.integration.real_registry import RealRegistry
from tests.signing import (
    EMPTY_CONFIG,
    OCI_MANIFEST,
    new_key,
    public_pem,
    signature_layer,
    signature_manifest,
)

pytestmark = pytest.mark.registry


def push_signature(
    registry: RealRegistry, repository: str, digest: str, key: ec.EllipticCurvePrivateKey
) -> None:
    """What ``cosign sign --key`` pushes: a manifest under ``sha256-<hex>.sig``."""
    layer = signature_layer(key, digest, f"{registry.host}/{repository}")
    blob = registry.push_blob(repository, layer.blob)
    config = registry.push_blob(repository, EMPTY_CONFIG)
    document = signature_manifest([(blob, len(layer.blob), layer.annotations)], config)
    registry.push_manifest(
        repository, signature_tag(digest), OCI_MANIFEST, json.dumps(document).encode()
    )


async def scan(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    registry: RealRegistry,
    repository: str,
    key: ec.EllipticCurvePrivateKey,
) -> tuple[ApprovalRequest, dict[str, Any], set[str]]:
    namespace, name = repository.split("/")
    async with sessionmaker() as session, session.begin():
        session.add(
            Image(
                image_name=name,
                namespace=namespace,
                registry_host=registry.host,
                approval_status="approved",
                watch_for_updates=True,
            )
        )
    configured = make_settings(
        settings.database_url, registries={registry.host: registry.credentials()}
    )
    app = create_app(configured)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        async with sessionmaker() as session, session.begin():
            _, token = await auth.create_token(
                session, name="t", role="admin", identity="admin@example.com", actor="test"
            )
        headers = {"Authorization": f"Bearer {token}"}
        added = await client.post(
            "/api/v1/signing-keys",
            json={"name": "release", "public_key": public_pem(key)},
            headers=headers,
        )
        assert added.status_code == 201, added.text
        summary = await app.state.monitor.run_once()
        assert summary.errors == 0, [r.error for r in summary.results]
        async with sessionmaker() as session:
            [request] = (await session.scalars(select(ApprovalRequest))).all()
            seen = set((await session.scalars(select(DiscoveredTag.tag))).all())
        shown = await client.get(f"/api/v1/images/approvals/{request.id}", headers=headers)
        assert shown.status_code == 200, shown.text
    return request, shown.json()["evidence"]["signature"], seen


async def test_an_index_signed_under_its_sig_tag_is_verified(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"signed/index-{uuid.uuid4().hex[:8]}"
    key = new_key()
    pushed = real_registry.push_multiarch(repository, "1.0.0")
    push_signature(real_registry, repository, pushed.digest, key)

    request, shown, seen = await scan(settings, sessionmaker, real_registry, repository, key)

    assert request.tag_name == "1.0.0"
    assert seen == {"1.0.0"}  # the .sig tag is not an image tag
    assert shown["status"] == "verified"
    assert shown["signers"] == ["release"]
    assert (shown["signed"], shown["signed_digest"]) == ("index", pushed.digest)


async def test_an_image_signed_per_platform_under_sig_tags_is_verified(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"signed/platforms-{uuid.uuid4().hex[:8]}"
    key = new_key()
    pushed = real_registry.push_multiarch(repository, "2.0.0")
    for digest in pushed.platform_digests.values():
        push_signature(real_registry, repository, digest, key)

    request, shown, seen = await scan(settings, sessionmaker, real_registry, repository, key)

    assert request.tag_name == "2.0.0"
    assert seen == {"2.0.0"}
    assert (shown["status"], shown["signed"], shown["signers"]) == (
        "verified",
        "platforms",
        ["release"],
    )
    assert shown["platforms"] == pushed.platform_digests


async def test_an_unsigned_image_on_a_real_registry_is_unsigned(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"signed/none-{uuid.uuid4().hex[:8]}"
    real_registry.push_multiarch(repository, "3.0.0")

    _, shown, _ = await scan(settings, sessionmaker, real_registry, repository, new_key())

    assert shown["status"] == "unsigned"
