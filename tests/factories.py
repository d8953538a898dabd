"""Test data in the seeds' own shapes, shared by the integration tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.auth.deps import get_clock
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.config import Settings
from tagwarden.rollouts.worker import RolloutMonitor
from tagwarden.testing.clock import FakeClock

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


# -- devices and rollouts ----------------------------------------------------------------------

NEW = "sha256:" + "a1" * 32
OLD = "sha256:" + "0b" * 32
ARM64_PLATFORM = "sha256:" + "c3" * 32


async def activate(
    sessionmaker: async_sessionmaker[AsyncSession],
    image_id: int,
    tag: str,
    digest: str,
    archs: tuple[str, ...] = ("amd64", "arm64"),
    *,
    platform: dict[str, str] | None = None,
    deprecated: bool = False,
) -> None:
    """Rows as activation writes them: one per architecture, the tag's digest on each."""
    async with sessionmaker() as session, session.begin():
        for arch in archs:
            session.add(
                ImageTag(
                    image_id=image_id,
                    tag=tag,
                    architecture=arch,
                    digest=digest,
                    platform_digest=(platform or {}).get(arch),
                    metadata_={"architectures": [arch], "source": "test"},
                    is_deprecated=deprecated,
                )
            )


async def register(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    uuid: str,
    architecture: str = "amd64",
    labels: dict[str, str] | None = None,
) -> str:
    response = await client.post(
        "/api/v1/devices",
        json={"uuid": uuid, "architecture": architecture, "labels": labels or {}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["device_key"])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def report(
    client: httpx.AsyncClient,
    uuid: str,
    key: str,
    *,
    digest: str,
    status: str = "running",
    health: str = "healthy",
    reason: str | None = None,
    app: str = "redis",
) -> None:
    body: dict[str, Any] = {"image": f"redis:x@{digest}", "status": status, "health": health}
    if reason:
        body["reason"] = reason
    response = await client.patch(
        f"/api/v1/device/{uuid}/state", json={"apps": {app: body}}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text


async def target_of(client: httpx.AsyncClient, uuid: str, key: str, app: str = "redis") -> Any:
    state = await client.get(f"/api/v1/device/{uuid}/state", headers=bearer(key))
    assert state.status_code == 200, state.text
    return state.json()["apps"].get(app, {}).get("digest")


def monitor_for(app: Any, clock: FakeClock) -> RolloutMonitor:
    """A rollout monitor on the app's database; reports and actions share its clock."""
    app.dependency_overrides[get_clock] = lambda: clock
    return RolloutMonitor(app.state.settings, app.state.sessionmaker, clock=clock)


async def rollout(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    payload = {"image": "redis", "tag": "7.2.5-alpine", "strategy": "canary"} | body
    response = await client.post("/api/v1/rollouts", json=payload, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def show(client: httpx.AsyncClient, headers: dict[str, str], rollout_id: int) -> Any:
    response = await client.get(f"/api/v1/rollouts/{rollout_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def states(body: Any) -> dict[str, str]:
    return {d["device"]: d["state"] for d in body["devices"]}
