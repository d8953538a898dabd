"""SBOM acquisition: one package list per platform digest, found or generated once.

For each platform manifest of a tag's digest, in this order: the image's own SBOM (BuildKit's
in-toto attestation in the index, else an SPDX/CycloneDX referrer), else one Syft generates
from the registry, else ``no_sbom``. A stored row is final and read by every later check; an
``error`` row is tried again. The registry and Syft are asked with no transaction open; each
result is stored in a short transaction of its own (the row is a fact about content, true
whatever becomes of the request that caused it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.db import insert_for, transaction, utcnow
from tagwarden.registry.base import RegistryClient, RegistryError
from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.factory import repository_path
from tagwarden.registry.oci import OciClient
from tagwarden.vulnerabilities import attested, spdx
from tagwarden.vulnerabilities.models import Sbom
from tagwarden.vulnerabilities.packages import Package
from tagwarden.vulnerabilities.states import SbomSource, SbomStatus, needs_acquiring
from tagwarden.vulnerabilities.syft import SyftError, SyftLimits, SyftTarget, run_syft

log = logging.getLogger(__name__)

RunSyft = Callable[[SyftTarget, SyftLimits], Awaitable[dict[str, Any]]]
ClientFor = Callable[[str], RegistryClient]


@dataclass(frozen=True, slots=True)
class Acquired:
    """What one platform digest's acquisition found, ready to store."""

    digest: str
    status: SbomStatus
    source: SbomSource | None = None
    format: str | None = None
    packages: list[Package] = field(default_factory=list)
    error: str | None = None


# -- reading and storing ------------------------------------------------------------------


async def stored_sboms(session: AsyncSession, digests: Iterable[str]) -> dict[str, Sbom]:
    """The stored rows of these platform digests (absent: never acquired)."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = await session.scalars(select(Sbom).where(Sbom.digest.in_(wanted)))
    return {row.digest: row for row in rows}


async def stored_packages(session: AsyncSession, digest: str) -> list[dict[str, Any]] | None:
    """The package list of one platform digest, for matching; None when there is none to
    match (never acquired, ``no_sbom`` or ``error``). An empty list is a catalogued image
    with no packages."""
    row = await session.get(Sbom, digest)
    if row is None or row.status not in (SbomStatus.FOUND, SbomStatus.GENERATED):
        return None
    return list(row.packages)


async def store(session: AsyncSession, acquired: Acquired) -> None:
    """Insert the digest's row, or replace an ``error`` row (states.TRANSITIONS); a final row
    stored meanwhile by another check stays as it is."""
    values = {
        "status": str(acquired.status),
        "source": str(acquired.source) if acquired.source else None,
        "format": acquired.format,
        "packages": list(acquired.packages),
        "error": acquired.error,
        "created_at": utcnow(),
    }
    insert = insert_for(session)
    statement = insert(Sbom).values(digest=acquired.digest, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["digest"], set_=values, where=Sbom.status == str(SbomStatus.ERROR)
    )
    await session.execute(statement)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Sbom) and obj.digest == acquired.digest:
            session.expire(obj)


# -- acquiring (registry and Syft; no database) --------------------------------------------


def artifact_reader(client: RegistryClient) -> OciClient | None:
    """The registry API that holds an image's manifests and blobs (Docker Hub's registry
    behind its Hub API client)."""
    if isinstance(client, OciClient):
        return client
    if isinstance(client, DockerHubClient):
        return client.registry
    return None


def syft_target(reader: OciClient, repository: str, digest: str) -> SyftTarget:
    """Syft is pointed at the registry the reader talks to, with the reader's credentials;
    plain HTTP only where the operator configured an ``http://`` URL for the host."""
    url = urlsplit(reader.base_url)
    return SyftTarget(
        authority=url.netloc,
        repository=repository,
        digest=digest,
        plain_http=url.scheme == "http",
        username=reader.username,
        password=reader.password,
    )


@dataclass
class SyftPlan:
    """How (and whether) Syft runs: ``None`` limits means disabled."""

    limits: SyftLimits | None
    run: RunSyft = run_syft
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    @classmethod
    def of(cls, settings: Settings, run: RunSyft = run_syft) -> SyftPlan:
        limits = SyftLimits(
            timeout_seconds=settings.sbom_syft_timeout_seconds,
            memory_bytes=settings.sbom_syft_memory_mb * 1024 * 1024,
            binary=settings.sbom_syft_path,
        )
        return cls(
            limits if settings.sbom_syft else None,
            run,
            asyncio.Semaphore(settings.sbom_syft_concurrency),
        )


async def generate(syft: SyftPlan, target: SyftTarget) -> Acquired:
    if syft.limits is None:
        return Acquired(target.digest, SbomStatus.NO_SBOM)
    try:
        async with syft.gate:
            document = await syft.run(target, syft.limits)
        found = spdx.packages(document)
    except SyftError as exc:
        said = exc.args[1].decode(errors="replace") if len(exc.args) > 1 else ""
        log.warning("Syft failed on %s: %s %s", target.reference, exc.args[0], said)
        return Acquired(target.digest, SbomStatus.ERROR, SbomSource.SYFT, error=exc.args[0])
    except OSError as exc:  # the binary is missing or not executable
        log.warning("Syft could not run on %s: %s", target.reference, exc)
        return Acquired(
            target.digest, SbomStatus.ERROR, SbomSource.SYFT, error="Syft could not run"
        )
    except spdx.NotSpdx:
        return Acquired(
            target.digest, SbomStatus.ERROR, SbomSource.SYFT, error="Syft wrote no SPDX"
        )
    # Syft ran and found no package database: nothing to match, said so.
    status = SbomStatus.GENERATED if found else SbomStatus.NO_SBOM
    return Acquired(target.digest, status, SbomSource.SYFT, spdx.FORMAT, found)


async def acquire(
    reader: OciClient, repository: str, digest: str, attestation: str | None, syft: SyftPlan
) -> Acquired:
    """The SBOM of one platform manifest: attested, referred, generated, or none. A registry
    failure is an ``error`` (tried again on the next check), never an exception."""
    found = None
    if attestation is not None:
        try:
            found = await attested.from_attestation(reader, repository, attestation)
        except RegistryError as exc:
            # The image says it has an SBOM: tried again later rather than replaced by Syft's.
            log.warning("reading the SBOM attestation of %s@%s failed: %s", repository, digest, exc)
            return Acquired(digest, SbomStatus.ERROR, error=f"registry: {str(exc)[:400]}")
    if found is None:
        try:
            found = await attested.from_referrers(reader, repository, digest)
        except RegistryError as exc:
            # A registry whose referrers API misbehaves must not keep Syft away for good.
            log.info("no SBOM referrers of %s@%s: %s", repository, digest, exc)
    if found is not None:
        return Acquired(digest, SbomStatus.FOUND, found.source, found.format, found.packages)
    return await generate(syft, syft_target(reader, repository, digest))


class SbomCollector:
    """Gives every platform digest of a tag's digest its stored SBOM (the monitor calls it for
    the digests about to become requests, the API for a manual or on-demand check)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        client_for: ClientFor,
        *,
        run: RunSyft = run_syft,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client_for = client_for
        self.syft = SyftPlan.of(settings, run)

    async def collect(
        self,
        registry_host: str,
        repository: str,
        digests: Sequence[str],
        *,
        client: RegistryClient | None = None,
    ) -> dict[str, str]:
        """Platform digest → its SBOM's status, for every platform of ``digests`` (tag
        digests: an index or a single manifest). A tag whose manifest cannot be read is left
        out (nothing is stored; the next check tries again). ``client``: the scan's own, whose
        manifests by digest are already read (an index is then never fetched twice)."""
        try:
            reader = artifact_reader(client or self.client_for(registry_host))
        except RegistryError as exc:  # a host no longer allowed
            log.warning("no SBOM for %s: %s", repository, exc)
            return {}
        if reader is None:
            return {}
        attestations: dict[str, str | None] = {}
        for digest in dict.fromkeys(digests):
            try:
                layout = await attested.read_layout(reader, repository, digest)
            except RegistryError as exc:
                log.warning("no SBOM for %s@%s: %s", repository, digest, exc)
                continue
            for platform in layout.platforms.values():
                attestations.setdefault(platform, layout.attestations.get(platform))
        async with self.sessionmaker() as session:
            stored = {
                d: row.status for d, row in (await stored_sboms(session, attestations)).items()
            }
        statuses = dict(stored)
        for platform, attestation in attestations.items():
            if not needs_acquiring(stored.get(platform)):
                continue
            acquired = await acquire(reader, repository, platform, attestation, self.syft)
            async with transaction(self.sessionmaker) as session:
                await store(session, acquired)
            statuses[platform] = str(acquired.status)
        return statuses

    async def collect_for_image(self, image_id: int, digest: str | None) -> dict[str, str]:
        """:meth:`collect` for one digest of an image (a manual request, an on-demand check);
        {} for no digest or no such image."""
        if digest is None:
            return {}
        async with self.sessionmaker() as session:
            image = await session.get(Image, image_id)
            if image is None:
                return {}
            host = image.registry_host
            repository = repository_path(image.namespace, image.image_name, host)
        return await self.collect(host, repository, [digest])
