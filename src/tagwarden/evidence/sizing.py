"""Size evidence use cases: read a digest's sizes from its registry (no transaction open), then
store them against the image's previous approved tag (in the caller's transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.catalogue.service import get_image
from tagwarden.evidence import sizes
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import PolicyMode, SizePolicy
from tagwarden.evidence.service import store_size
from tagwarden.notify.service import emit
from tagwarden.registry.base import RegistryClient, RegistryError, RemoteTag
from tagwarden.registry.factory import repository_path
from tagwarden.registry.oci import OciClient, PlatformBlobs
from tagwarden.rules.models import ImagePolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeFacts:
    """What the registry said of a digest's sizes: platform manifests' blobs, or (Docker Hub)
    the Hub API's compressed sizes the request's metadata already holds."""

    platforms: Mapping[str, PlatformBlobs] = field(default_factory=dict)
    hub_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return bool(self.platforms or self.hub_sizes)


def hub_sizes(metadata: Mapping[str, Any]) -> dict[str, int]:
    """Architecture → compressed size from a request's ``platform_details`` (the Hub's
    ``images[].size``), where the registry said one."""
    details = metadata.get("platform_details")
    if not isinstance(details, dict):
        return {}
    found: dict[str, int] = {}
    for arch, entry in details.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            found[arch] = size
    return found


def listed_sizes(tag: RemoteTag) -> dict[str, int]:
    """What a listing said of each platform's compressed size (the Hub's ``images[].size``)."""
    found: dict[str, int] = {}
    for platform in sorted(tag.platforms, key=lambda p: p.os != "linux"):
        if platform.size is not None:
            found.setdefault(platform.architecture, platform.size)
    return found


async def read_sizes(
    client: RegistryClient, repository: str, digest: str, said: Mapping[str, int]
) -> SizeFacts:
    """Registry I/O only: call it with no transaction open.

    Docker Hub's sizes come from the Hub API listing already made (reading manifests there
    would spend pulls of a small anonymous budget), so its evidence has no blobs. Any other
    registry: the platform manifests, by digest. ``said``: the sizes the listing gave (Docker
    Hub's, or a request's ``platform_details``). A registry error leaves only those (logged);
    the request is still made and can be checked again on demand.
    """
    if not isinstance(client, OciClient):
        return SizeFacts(hub_sizes=said)
    try:
        return SizeFacts(platforms=await client.image_blobs(repository, digest))
    except RegistryError as exc:
        log.warning("sizes of %s@%s: %s", repository, digest, exc)
        return SizeFacts(hub_sizes=said)


async def previous_approved(
    session: AsyncSession, image_id: int, digest: str
) -> sizes.Previous | None:
    """The image's most recently approved tag with another digest, and its size evidence."""
    row = (
        await session.execute(
            select(ApprovalRequest.tag_name, ApprovalRequest.digest, DigestEvidence.size)
            .outerjoin(
                DigestEvidence,
                (DigestEvidence.image_id == ApprovalRequest.image_id)
                & (DigestEvidence.digest == ApprovalRequest.digest),
            )
            .where(
                ApprovalRequest.image_id == image_id,
                ApprovalRequest.status == "approved",
                ApprovalRequest.tag_name.is_not(None),
                ApprovalRequest.digest.is_not(None),
                ApprovalRequest.digest != digest,
            )
            .order_by(ApprovalRequest.reviewed_at.desc(), ApprovalRequest.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    tag, previous_digest, evidence = row
    return sizes.previous_from(str(tag), str(previous_digest), evidence)


async def refresh(
    session: AsyncSession,
    request: ApprovalRequest,
    client_for_host: Callable[[str], RegistryClient],
    *,
    now: datetime,
) -> dict[str, Any] | None:
    """Check a request's digest's sizes again (on demand), and store them.

    Only reads happen before the registry is asked, so no write lock is held across it.
    """
    if request.digest is None or request.tag_name is None:
        return None
    image = await get_image(session, request.image_id)
    said = hub_sizes(request.metadata_)
    try:
        client = client_for_host(image.registry_host)
    except RegistryError as exc:  # a host no longer allowed: what the listing said stands
        log.warning("sizes of %s: %s", image.display_name, exc)
        facts = SizeFacts(hub_sizes=said)
    else:
        repository = repository_path(image.namespace, image.image_name, image.registry_host)
        facts = await read_sizes(client, repository, request.digest, said)
    return await record_sizes(session, request.image_id, request.digest, facts, now=now)


async def size_policy(session: AsyncSession, image_id: int) -> SizePolicy:
    stored = await session.scalar(
        select(ImagePolicy.size_policy).where(ImagePolicy.image_id == image_id)
    )
    return SizePolicy.model_validate(stored or {})


async def record_sizes(
    session: AsyncSession,
    image_id: int,
    digest: str,
    facts: SizeFacts,
    *,
    now: datetime,
) -> dict[str, Any] | None:
    """Store the digest's size evidence (an upsert) against the previous approved tag; None
    (and nothing stored) when the registry said no size at all."""
    if not facts.known:
        return None
    evidence = sizes.size_evidence(
        {arch: p.blobs for arch, p in facts.platforms.items()},
        hub_sizes=facts.hub_sizes,
        manifests={arch: p.digest for arch, p in facts.platforms.items()},
        previous=await previous_approved(session, image_id, digest),
        checked_at=now,
    )
    await store_size(session, image_id, digest, evidence)
    return evidence


async def announce_growth(
    session: AsyncSession,
    image_id: int,
    image: str,
    tag: str,
    digest: str,
    evidence: Mapping[str, Any],
) -> None:
    """``tag.size_grew`` for a new request whose digest grew past the image's
    ``max_growth_percent`` (or 20 %) on some platform, in the caller's transaction."""
    policy = await size_policy(session, image_id)
    grew = sizes.grown(evidence, sizes.growth_event_percent(policy))
    if grew:
        await emit(
            session,
            "tag.size_grew",
            {
                "image_id": image_id,
                "image": image,
                "tag": tag,
                "digest": digest,
                "growth_percent": grew,
                "platforms": evidence.get("platforms"),
                "previous": evidence.get("previous"),
            },
        )


@dataclass(frozen=True)
class SizeVerdict:
    """The size check of one request's digest under its image's policy."""

    mode: PolicyMode
    failures: list[str]

    @property
    def refuses(self) -> bool:
        return self.mode == PolicyMode.ENFORCE and bool(self.failures)


async def check_size(session: AsyncSession, image_id: int, digest: str | None) -> SizeVerdict:
    policy = await size_policy(session, image_id)
    if policy.mode == PolicyMode.OFF:
        return SizeVerdict(policy.mode, [])
    stored = None
    if digest is not None:
        stored = await session.scalar(
            select(DigestEvidence.size).where(
                DigestEvidence.image_id == image_id, DigestEvidence.digest == digest
            )
        )
    return SizeVerdict(policy.mode, sizes.size_failures(stored, policy))


async def image_size_evidence(
    session: AsyncSession, image_id: int
) -> dict[str, dict[str, Any] | None]:
    """Digest → stored size evidence, for every digest of the image that has some."""
    rows = await session.execute(
        select(DigestEvidence.digest, DigestEvidence.size).where(
            DigestEvidence.image_id == image_id,
            DigestEvidence.size.is_not(None),
        )
    )
    # Platform digests are inside the evidence, not keys: every row of the image is read,
    # which is one row per digest ever checked.
    return {str(d): s for d, s in rows.all()}


async def latest_approved_sizes(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(image, architecture, compressed bytes) of each image's most recently approved tag."""
    newest = (
        select(
            ApprovalRequest.image_id,
            ApprovalRequest.digest,
            func.row_number()
            .over(
                partition_by=ApprovalRequest.image_id,
                order_by=(ApprovalRequest.reviewed_at.desc(), ApprovalRequest.id.desc()),
            )
            .label("rank"),
        )
        .where(
            ApprovalRequest.status == "approved",
            ApprovalRequest.tag_name.is_not(None),
            ApprovalRequest.digest.is_not(None),
        )
        .subquery()
    )
    rows = await session.execute(
        select(Image, DigestEvidence.size)
        .join(newest, newest.c.image_id == Image.id)
        .join(
            DigestEvidence,
            (DigestEvidence.image_id == Image.id) & (DigestEvidence.digest == newest.c.digest),
        )
        .where(newest.c.rank == 1)
    )
    found: list[tuple[str, str, int]] = []
    for image, evidence in rows.all():
        for arch, size in sorted(sizes.sizes_of(evidence).items()):
            found.append((image.display_name, arch, size))
    return found
