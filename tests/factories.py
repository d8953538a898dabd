"""Test data in the seeds' own shapes, shared by the integration tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.config import Settings

TEST_SECRET_KEY = "test-secret-key-0123456789"

# Background loops off: tests drive the monitor, the rollout worker, the outbox and the rules
# tick by tick, and a test that wants one running says so.
TEST_DEFAULTS: dict[str, Any] = {
    "monitor_enabled": False,
    "rollout_worker_enabled": False,
    "outbox_worker_enabled": False,
    "rules_worker_enabled": False,
    "secret_key": TEST_SECRET_KEY,
    # Syft would dial the registry of every image a test scans (fakes served in-process
    # included); the SBOM tests turn it on against the loopback registry.
    "sbom_syft": False,
}


def make_settings(database_url: str | None = None, **overrides: Any) -> Settings:
    """The suite's settings: the test defaults above, then the test's own values on top
    (``secret_key=None`` gives a server without a key, as a default install runs)."""
    values = dict(TEST_DEFAULTS)
    if database_url is not None:
        values["database_url"] = database_url
    values.update(overrides)
    return Settings(**values)


DIGEST = "sha256:" + "abc123" * 10 + "abcd"
SEED_METADATA = {
    "digest": DIGEST,
    "architectures": ["amd64", "arm64"],
    "last_updated": "2025-10-17T10:30:00Z",
    "source": "image_monitor",
}


async def add_image(
    sessionmaker: async_sessionmaker[AsyncSession], name: str = "redis", **kwargs: Any
) -> int:
    """An approved image written directly, as the catalogue stores it; its id."""
    async with sessionmaker() as session, session.begin():
        image = Image(image_name=name, approval_status="approved", **kwargs)
        session.add(image)
        await session.flush()
        return image.id


async def add_redis(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/images", json={"image_name": "redis", "category": "cache"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def seed_request(
    sessionmaker: async_sessionmaker[AsyncSession],
    image_id: int,
    *,
    request_id: int = 123,
    tag: str = "7.2.5-alpine",
    metadata: dict[str, Any] | None = None,
) -> int:
    """The monitor's INSERT from seed 001, with the seed's own id."""
    data = dict(metadata or SEED_METADATA)
    async with sessionmaker() as session, session.begin():
        session.add(
            ApprovalRequest(
                id=request_id,
                image_id=image_id,
                image_name="redis",
                tag_name=tag,
                status="pending",
                metadata_=data,
                digest=data.get("digest"),
                requested_by="image_monitor",
            )
        )
    return request_id
