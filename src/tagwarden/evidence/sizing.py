"""Size evidence use cases: read a digest's sizes from its registry (no transaction open), then
store them against the image's previous approved tag (in the caller's transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest, ImagePolicy
from tagwarden.approvals.states import RequestStatus
from tagwarden.catalogue.models import Image
from tagwarden.db import transaction, utcnow
from tagwarden.errors import Conflict, NotFound
from tagwarden.evidence import sizes
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import PolicyMode, SizePolicy
from tagwarden.evidence.service import store_size
from tagwarden.notify.service import emit
from tagwarden.registry.base import RegistryClient, RegistryError, RemoteTag
from tagwarden.registry.factory import repository_path
from tagwarden.registry.oci import OciClient, PlatformBlobs

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
                ApprovalRequest.status == RequestStatus.APPROVED,
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
    sessionmaker: async_sessionmaker[AsyncSession],
    client_for_host: Callable[[str], RegistryClient],
    image_id: int,
    digest: str | None,
    *,
    said: Mapping[str, int] | None = None,
    only_with_policy: bool = False,
) -> dict[str, Any] | None:
    """Read a digest's sizes from its registry now and store them; the evidence stored.

    The image is read in one short transaction, the registry asked with none open, and the
    result stored in another, so no write lock waits on the registry. ``said``: sizes a
    listing or a request's metadata gave (Docker Hub's). ``only_with_policy``: ask nothing
    unless the image has a size policy on (a request a person creates).
    """
    if digest is None:
        return None
    async with transaction(sessionmaker) as session:
        image = await session.get(Image, image_id)
        if image is None:
            raise NotFound(f"image {image_id} not found")
        if only_with_policy and (await size_policy(session, image_id)).mode == PolicyMode.OFF:
            return None
        host = image.registry_host
        repository = repository_path(image.namespace, image.image_name, host)
        name = image.display_name
    try:
        client = client_for_host(host)
    except RegistryError as exc:  # a host no longer allowed: what the listing said stands
        log.warning("sizes of %s: %s", name, exc)
        facts = SizeFacts(hub_sizes=dict(said or {}))
    else:
        facts = await read_sizes(client, repository, digest, dict(said or {}))
    async with transaction(sessionmaker) as session:
        if await session.get(Image, image_id) is None:
            return None
        return await record_sizes(session, image_id, digest, facts, now=utcnow())


async def refresh_request(
    sessionmaker: async_sessionmaker[AsyncSession],
    client_for_host: Callable[[str], RegistryClient],
    request_id: int,
) -> dict[str, Any] | None:
    """:func:`refresh` for an approval request's digest (a tag request; not an image-level one)."""
    async with transaction(sessionmaker) as session:
        request = await session.get(ApprovalRequest, request_id)
        if request is None:
            raise NotFound(f"approval request {request_id} not found")
        image_id, digest, tag = request.image_id, request.digest, request.tag_name
        said = hub_sizes(request.metadata_)
    if tag is None:
        return None
    return await refresh(sessionmaker, client_for_host, image_id, digest, said=said)


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


async def size_gate(
    session: AsyncSession, image_id: int, digest: str | None, *, strict: bool = False
) -> list[dict[str, Any]]:
    """Hold an approval to the image's size policy.

    ``enforce`` (or any mode when ``strict``, as for a rule's approval: past a warning only a
    person approves): a digest over a limit, or without size evidence, is a 409
    ``size_exceeded``. ``warn``: the failed checks, for the decision's audit entry.
    """
    policy = await size_policy(session, image_id)
    if policy.mode == PolicyMode.OFF:
        return []
    stored = None
    if digest is not None:
        stored = await session.scalar(
            select(DigestEvidence.size).where(
                DigestEvidence.image_id == image_id, DigestEvidence.digest == digest
            )
        )
    failures = sizes.size_failures(stored, policy)
    if failures and (policy.mode == PolicyMode.ENFORCE or strict):
        raise Conflict(
            f"approval refused: {digest} fails the image's size policy: " + "; ".join(failures),
            code="size_exceeded",
        )
    return [{"check": "size", "mode": str(policy.mode), "failure": f} for f in failures]


async def image_size_evidence(
    session: AsyncSession, image_id: int, digests: Collection[str]
) -> dict[str, dict[str, Any] | None]:
    """Digest → stored size evidence, for those of ``digests`` the image has evidence of.

    Evidence is keyed by the tag's own digest; a platform digest among ``digests`` finds
    nothing here, and is found through its tag's evidence (:func:`sizes.blobs_by_digest`).
    """
    wanted = sorted({d for d in digests if d})
    if not wanted:
        return {}
    rows = await session.execute(
        select(DigestEvidence.digest, DigestEvidence.size).where(
            DigestEvidence.image_id == image_id,
            DigestEvidence.digest.in_(wanted),
            DigestEvidence.size.is_not(None),
        )
    )
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
            ApprovalRequest.status == RequestStatus.APPROVED,
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
