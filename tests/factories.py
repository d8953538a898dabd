"""Test data in the seeds' own shapes, shared by the integration tests."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.auth.deps import get_clock
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.config import Settings
from tagwarden.rollouts.worker import RolloutMonitor
from tagwarden.testing.clock import FakeClock
from tagwarden.vulnerabilities.models import Sbom

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


# -- SBOMs and OSV records ----------------------------------------------------------------------

OSV_MODIFIED = "2026-11-30T12:00:00Z"
CRITICAL_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
MEDIUM_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 5.4
HIGH_V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


def apk(name: str, version: str, release: str = "v3.20") -> dict[str, Any]:
    """A package of an Alpine SBOM, as the sboms table holds it."""
    return {
        "name": name,
        "version": version,
        "purl": f"pkg:apk/alpine/{name}@{version}?distro=alpine-{release.lstrip('v')}",
        "ecosystem": f"Alpine:{release}",
    }


def deb(name: str, version: str, release: str = "12", source: str | None = None) -> dict[str, Any]:
    """A package of a Debian SBOM; ``source``: its source package (the purl's upstream)."""
    upstream = f"&upstream={source}" if source else ""
    return {
        "name": name,
        "version": version,
        "purl": f"pkg:deb/debian/{name}@{version}?arch=amd64{upstream}&distro=debian-{release}",
        "ecosystem": f"Debian:{release}",
    }


def osv_record(
    osv_id: str,
    ecosystem: str,
    name: str,
    events: list[dict[str, str]],
    *,
    modified: str = OSV_MODIFIED,
    vector: str | None = None,
    db_severity: str | None = None,
    aliases: tuple[str, ...] = (),
    versions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An OSV record in OSV's schema: one affected package with one ECOSYSTEM range."""
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": osv_id,
        "modified": modified,
        "published": "2026-11-01T00:00:00Z",
        "aliases": list(aliases),
        "summary": f"{name} issue",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": list(versions),
            }
        ],
    }
    if vector:
        kind = "CVSS_V4" if vector.startswith("CVSS:4") else "CVSS_V3"
        record["severity"] = [{"type": kind, "score": vector}]
    if db_severity:
        record["database_specific"] = {"severity": db_severity}
    return record


def write_osv(
    directory: Path, records: list[dict[str, Any]], *, archive: str | None = None
) -> Path:
    """The records as an operator downloads them: one JSON file each, or an ``all.zip``."""
    directory.mkdir(parents=True, exist_ok=True)
    if archive:
        with zipfile.ZipFile(directory / archive, "w") as out:
            for record in records:
                out.writestr(f"{record['id']}.json", json.dumps(record))
        return directory
    for record in records:
        (directory / f"{record['id']}.json").write_text(json.dumps(record))
    return directory


async def add_sbom(
    sessionmaker: async_sessionmaker[AsyncSession],
    digest: str,
    packages: list[dict[str, Any]],
    status: str = "generated",
) -> None:
    """An SBOM row as the SBOM step stores it (a platform digest's package list)."""
    async with sessionmaker() as session, session.begin():
        session.add(
            Sbom(
                digest=digest,
                status=status,
                source="syft" if status == "generated" else None,
                format="syft-json" if status == "generated" else None,
                packages=packages,
            )
        )
