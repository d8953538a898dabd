"""Shared set-up for the device and rollout tests (no tests here): activated tags, devices,
reports, and a clock the tests move by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.auth.deps import get_clock
from tagwarden.catalogue.models import ImageTag
from tagwarden.db import utcnow
from tagwarden.rollouts.worker import RolloutMonitor

NEW = "sha256:" + "a1" * 32
OLD = "sha256:" + "0b" * 32
ARM64_PLATFORM = "sha256:" + "c3" * 32


@dataclass
class Clock:
    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


def monitor_for(app: Any, clock: Clock) -> RolloutMonitor:
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
