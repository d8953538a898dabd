"""SBOMs of images pushed to Debian's docker-registry on loopback, on both databases: Syft
(the real binary) catalogues Alpine and Debian package databases of images built here
``FROM scratch``; an image carrying BuildKit's SPDX attestation is read, never given to Syft."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.auth import service as auth
from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.vulnerabilities.models import Sbom
from tagwarden.vulnerabilities.sbom import Acquired, SbomCollector, store, stored_packages
from tagwarden.vulnerabilities.states import SbomStatus
from tagwarden.vulnerabilities.syft import SyftLimits, SyftTarget, run_syft
from tests.factories import make_settings
from tests.integration.real_registry import RealRegistry, sha256
from tests.integration.sbom_images import (
    ALPINE_FILES,
    DEBIAN_FILES,
    push_image,
    push_sbom_referrer,
)

pytestmark = pytest.mark.registry


@dataclass
class CountingSyft:
    """The real Syft, counted: how a test proves an attested image was never given to it."""

    runs: list[str] = field(default_factory=list)

    async def __call__(self, target: SyftTarget, limits: SyftLimits) -> dict[str, Any]:
        self.runs.append(target.digest)
        return await run_syft(target, limits)


async def add_images(
    sessionmaker: async_sessionmaker[AsyncSession], registry: RealRegistry, *repositories: str
) -> None:
    async with sessionmaker() as session, session.begin():
        for repository in repositories:
            namespace, name = repository.split("/")
            session.add(
                Image(
                    image_name=name,
                    namespace=namespace,
                    registry_host=registry.host,
                    approval_status="approved",
                    watch_for_updates=True,
                )
            )


@asynccontextmanager
async def monitor(
    settings: Settings, registry: RealRegistry, syft: CountingSyft, **overrides: Any
) -> AsyncIterator[ImageMonitor]:
    """The server's own monitor, configured for the loopback registry, Syft counted."""
    configured = make_settings(
        settings.database_url,
        registries={registry.host: registry.credentials()},
        **{"sbom_syft": True, **overrides},
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        found: ImageMonitor = app.state.monitor
        found.sboms = SbomCollector(configured, found.sessionmaker, found.client, run=syft)
        yield found


async def scan(found: ImageMonitor) -> None:
    summary = await found.run_once()
    assert summary.errors == 0, [r.error for r in summary.results]


async def sbom(sessionmaker: async_sessionmaker[AsyncSession], digest: str) -> Sbom:
    async with sessionmaker() as session:
        row = await session.get(Sbom, digest)
    assert row is not None, f"no SBOM stored for {digest}"
    return row


def named(row: Sbom) -> set[tuple[str, str, str | None, str | None]]:
    return {(p["name"], p["version"], p["ecosystem"], p["source"]) for p in row.packages}


async def test_syft_catalogues_alpine_and_debian_package_databases_once(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    alpine, debian = (f"sbom/{kind}-{uuid.uuid4().hex[:8]}" for kind in ("alpine", "debian"))
    pushed_alpine = push_image(real_registry, alpine, "3.20.3", ALPINE_FILES)
    pushed_debian = push_image(real_registry, debian, "12.7", DEBIAN_FILES)
    await add_images(sessionmaker, real_registry, alpine, debian)
    syft = CountingSyft()

    async with monitor(settings, real_registry, syft) as found:
        await scan(found)
        async with sessionmaker() as session:
            requested = set((await session.scalars(select(ApprovalRequest.digest))).all())
        assert requested == {pushed_alpine.digest, pushed_debian.digest}

        apk = await sbom(sessionmaker, pushed_alpine.platform)
        deb = await sbom(sessionmaker, pushed_debian.platform)
        for row in (apk, deb):
            assert (row.status, row.source, row.format) == ("generated", "syft", "spdx-json")
        assert named(apk) == {
            ("musl", "1.2.5-r0", "Alpine:v3.20", None),
            ("busybox", "1.36.1-r29", "Alpine:v3.20", None),
        }
        assert {p["purl"] for p in apk.packages} == {
            "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3",
            "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3",
        }
        assert named(deb) == {
            ("libssl3", "3.0.11-1~deb12u2", "Debian:12", "openssl"),
            ("zlib1g", "1:1.2.13.dfsg-1", "Debian:12", "zlib"),
        }
        assert sorted(syft.runs) == sorted([pushed_alpine.platform, pushed_debian.platform])

        # A later check of the same digests reads the rows: Syft is not run again.
        again = await found.sboms.collect(real_registry.host, debian, [pushed_debian.digest])
        assert again == {pushed_debian.platform: "generated"}
        assert len(syft.runs) == 2
    async with sessionmaker() as session:
        stored = await stored_packages(session, pushed_debian.platform)
    assert stored == deb.packages


async def test_an_image_carrying_its_own_spdx_attestation_is_not_given_to_syft(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"sbom/attested-{uuid.uuid4().hex[:8]}"
    # The layer holds Alpine's database too: were Syft run, it would find musl 1.2.5-r0.
    attested = [
        ("musl", "1.2.4-r2", "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4"),
        ("zlib", "1.2.13-r1", "pkg:apk/alpine/zlib@1.2.13-r1?arch=x86_64&distro=alpine-3.18.4"),
    ]
    pushed = push_image(real_registry, repository, "1.0.0", ALPINE_FILES, attestation=attested)
    await add_images(sessionmaker, real_registry, repository)
    syft = CountingSyft()

    async with monitor(settings, real_registry, syft) as found:
        await scan(found)

    row = await sbom(sessionmaker, pushed.platform)
    assert (row.status, row.source, row.format) == ("found", "attestation", "spdx-json")
    assert named(row) == {
        ("musl", "1.2.4-r2", "Alpine:v3.18", None),
        ("zlib", "1.2.13-r1", "Alpine:v3.18", None),
    }
    assert syft.runs == []
    # The attestation manifest is not a platform: it has no SBOM of its own.
    assert pushed.attestation is not None
    async with sessionmaker() as session:
        assert await session.get(Sbom, pushed.attestation) is None
        assert await session.get(Sbom, pushed.digest) is None


async def test_a_cyclonedx_referrer_under_the_fallback_tag_is_read_instead_of_syft(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"sbom/referred-{uuid.uuid4().hex[:8]}"
    pushed = push_image(real_registry, repository, "12.7", DEBIAN_FILES)
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {
                "type": "library",
                "name": "libssl3",
                "version": "3.0.13-1~deb12u1",
                "purl": "pkg:deb/debian/libssl3@3.0.13-1~deb12u1?distro=debian-12&upstream=openssl",
            }
        ],
    }
    push_sbom_referrer(real_registry, repository, pushed, json.dumps(bom).encode())
    await add_images(sessionmaker, real_registry, repository)
    syft = CountingSyft()

    async with monitor(settings, real_registry, syft) as found:
        await scan(found)
    row = await sbom(sessionmaker, pushed.platform)
    assert (row.status, row.source, row.format) == ("found", "referrer", "cyclonedx-json")
    assert named(row) == {("libssl3", "3.0.13-1~deb12u1", "Debian:12", "openssl")}
    assert syft.runs == []
    async with sessionmaker() as session:
        tags = set((await session.scalars(select(ApprovalRequest.tag_name))).all())
    assert tags == {"12.7"}  # the fallback tag is not an image tag


async def test_without_syft_or_a_package_database_there_is_no_sbom(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    off, empty = (f"sbom/{kind}-{uuid.uuid4().hex[:8]}" for kind in ("off", "empty"))
    pushed_off = push_image(real_registry, off, "1", DEBIAN_FILES)
    pushed_empty = push_image(real_registry, empty, "1", {"etc/hostname": "scratch\n"})
    await add_images(sessionmaker, real_registry, off)
    syft = CountingSyft()
    async with monitor(settings, real_registry, syft, sbom_syft=False) as found:
        await scan(found)
    row = await sbom(sessionmaker, pushed_off.platform)
    assert (row.status, row.source, row.packages) == ("no_sbom", None, [])
    assert syft.runs == []

    async with monitor(settings, real_registry, syft) as found:
        statuses = await found.sboms.collect(real_registry.host, empty, [pushed_empty.digest])
    assert statuses == {pushed_empty.platform: "no_sbom"}
    row = await sbom(sessionmaker, pushed_empty.platform)
    assert (row.source, row.packages) == ("syft", [])
    async with sessionmaker() as session:
        assert await stored_packages(session, pushed_empty.platform) is None


async def test_a_failed_syft_run_is_an_error_tried_again_on_the_next_check(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"sbom/retry-{uuid.uuid4().hex[:8]}"
    pushed = push_image(real_registry, repository, "1", ALPINE_FILES)
    # The layer goes missing: the index and manifest read, Syft cannot fetch the layer.
    layer = sha256(pushed.layer)
    gone = real_registry._http.delete(f"{real_registry.url}/v2/{repository}/blobs/{layer}")
    assert gone.status_code == 202, gone.text
    syft = CountingSyft()
    async with monitor(settings, real_registry, syft) as found:
        first = await found.sboms.collect(real_registry.host, repository, [pushed.digest])
    assert first == {pushed.platform: "error"}
    row = await sbom(sessionmaker, pushed.platform)
    assert (row.status, row.source, row.packages) == ("error", "syft", [])
    assert row.error is not None
    assert row.error.startswith("Syft exited with status")

    real_registry.push_blob(repository, pushed.layer)
    async with monitor(settings, real_registry, syft) as found:
        second = await found.sboms.collect(real_registry.host, repository, [pushed.digest])
    assert second == {pushed.platform: "generated"}
    assert len(syft.runs) == 2
    row = await sbom(sessionmaker, pushed.platform)
    assert (row.status, row.error) == ("generated", None)
    assert {p["name"] for p in row.packages} == {"musl", "busybox"}


async def test_a_manual_request_and_an_on_demand_check_collect_the_sbom(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    real_registry: RealRegistry,
) -> None:
    repository = f"sbom/manual-{uuid.uuid4().hex[:8]}"
    pushed = push_image(real_registry, repository, "12.7", DEBIAN_FILES)
    await add_images(sessionmaker, real_registry, repository)
    async with sessionmaker() as session:
        image_id = (await session.scalars(select(Image.id))).one()
    configured = make_settings(
        settings.database_url,
        registries={real_registry.host: real_registry.credentials()},
        sbom_syft=True,
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
        created = await client.post(
            "/api/v1/images/approvals",
            json={
                "image_id": image_id,
                "tag_name": "12.7",
                "metadata": {"architectures": ["amd64"], "digest": pushed.digest},
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        row = await sbom(sessionmaker, pushed.platform)
        assert (row.status, row.source) == ("generated", "syft")
        assert {p["name"] for p in row.packages} == {"libssl3", "zlib1g"}

        # A final row is never overwritten by a later failure...
        async with sessionmaker() as session, session.begin():
            await store(session, Acquired(pushed.platform, SbomStatus.ERROR, error="failed"))
        assert (await sbom(sessionmaker, pushed.platform)).status == "generated"
        # ...while an error row (a Syft run that failed) is what an on-demand check retries.
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Sbom)
                .where(Sbom.digest == pushed.platform)
                .values(status="error", error="failed", packages=[])
            )
        checked = await client.post(
            f"/api/v1/images/approvals/{created.json()['id']}/evidence", headers=headers
        )
        assert checked.status_code == 200, checked.text
    row = await sbom(sessionmaker, pushed.platform)
    assert (row.status, row.error) == ("generated", None)
