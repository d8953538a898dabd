"""Findings, vulnerability evidence and recalls as the matcher stores them, for the approval
card's vulnerabilities part and the fleet view of a recalled digest (pages and browser)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.catalogue.models import ImageTag
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.evidence import service as evidence
from tagwarden.vulnerabilities import policy as verdicts
from tagwarden.vulnerabilities.models import Finding
from tagwarden.vulnerabilities.policy import Found
from tagwarden.vulnerabilities.schemas import PackagesDiffOut
from tagwarden.vulnerabilities.states import ScanStatus

OSV_DATA = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
MATCHED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
RECALLED = datetime(2026, 12, 1, 8, 15, tzinfo=UTC)

# The card's example: a critical with a fix, a high without, a low; one id was there before.
FOUND = (
    Found(
        "CVE-2026-1111",
        "openssl",
        "3.0.13-1~deb12u1",
        "3.0.15-1~deb12u1",
        "critical",
        ("DSA-5800-1",),
    ),
    Found("CVE-2026-2222", "zlib1g", "1:1.2.13.dfsg-1", None, "high"),
    Found("CVE-2026-3333", "libc6", "2.36-9+deb12u4", "2.36-9+deb12u9", "low"),
)
PREVIOUS_IDS = {"CVE-2026-2222", "CVE-2025-9999"}
PACKAGES = {
    "added": [{"name": "curl", "ecosystem": "Debian:12", "version": "7.88.1-10+deb12u8"}],
    "removed": [{"name": "wget", "ecosystem": "Debian:12", "version": "1.21.3-1+b2"}],
    "upgraded": [
        {
            "name": "openssl",
            "ecosystem": "Debian:12",
            "previous": "3.0.11-1~deb12u2",
            "current": "3.0.13-1~deb12u1",
        }
    ],
}


def vulnerability_evidence(
    found: tuple[Found, ...] = FOUND,
    *,
    previous: dict[str, str] | None = None,
    packages: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored object, made by the policy module's own evidence function."""
    out = verdicts.evidence(
        ScanStatus.SCANNED,
        list(found),
        previous_ids=PREVIOUS_IDS if previous else None,
        osv_data=OSV_DATA,
        now=MATCHED,
    )
    out.previous = previous
    out.packages = None if packages is None else PackagesDiffOut.model_validate(packages)
    return out.model_dump(mode="json")


async def add_findings(
    sessionmaker: async_sessionmaker[AsyncSession],
    image_id: int,
    digest: str,
    *,
    found: tuple[Found, ...] = FOUND,
    previous: dict[str, str] | None = None,
    packages: dict[str, Any] | None = None,
) -> None:
    """The digest's findings rows (a single-platform digest) and its evidence."""
    async with sessionmaker() as session, session.begin():
        for f in found:
            session.add(
                Finding(
                    digest=digest,
                    osv_id=f.osv_id,
                    package=f.package,
                    ecosystem="Debian:12",
                    installed=f.installed,
                    fixed_in=f.fixed_in,
                    severity=f.severity,
                    aliases=list(f.aliases),
                )
            )
        stored = vulnerability_evidence(found, previous=previous, packages=packages)
        await evidence.store_vulnerabilities(session, image_id, digest, stored)


async def recall(
    sessionmaker: async_sessionmaker[AsyncSession], image_id: int, tag: str, reason: str
) -> None:
    """An activated tag's rows recalled, as a re-match that found a blocking finding does."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ImageTag)
            .where(ImageTag.image_id == image_id, ImageTag.tag == tag)
            .values(is_recalled=True, recall_reason=reason, recalled_at=RECALLED)
        )


async def target(
    sessionmaker: async_sessionmaker[AsyncSession], uuid: str, digest: str, app: str = "redis"
) -> None:
    """Set a device's target digest for its app, as a rollout step does."""
    async with sessionmaker() as session, session.begin():
        device_id = await session.scalar(select(Device.id).where(Device.uuid == uuid))
        assert device_id is not None, uuid
        row = await session.scalar(
            select(DeviceApp).where(DeviceApp.device_id == device_id, DeviceApp.app_name == app)
        )
        if row is None:
            row = DeviceApp(device_id=device_id, app_name=app)
            session.add(row)
        row.image, row.tag, row.digest = "redis", "7.2.5", digest
