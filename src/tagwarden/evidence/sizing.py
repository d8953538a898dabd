"""Size evidence use cases: read a digest's sizes from its registry (no transaction open), then
store them against the image's previous approved tag (in the caller's transaction)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.catalogue.models import ImagePolicy
from tagwarden.errors import Conflict
from tagwarden.evidence import sizes
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import PolicyMode, SizePolicy
from tagwarden.evidence.service import store_size
from tagwarden.notify.service import emit
from tagwarden.registry.base import RegistryClient, RegistryError, RemoteTag
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


async def previous_sizes(
    session: AsyncSession, image_id: int, previous: tuple[str, str] | None
) -> sizes.Previous | None:
    """The size evidence of the image's previous approved (tag, digest), as the comparison
    reads it; which tag that is, approvals knows (approvals.history.previous_approved)."""
    if previous is None:
        return None
    tag, digest = previous
    evidence = await session.scalar(
        select(DigestEvidence.size).where(
            DigestEvidence.image_id == image_id, DigestEvidence.digest == digest
        )
    )
    return sizes.previous_from(tag, digest, evidence)


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
    previous: tuple[str, str] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Store the digest's size evidence (an upsert) against the previous approved (tag,
    digest); None (and nothing stored) when the registry said no size at all."""
    if not facts.known:
        return None
    evidence = sizes.size_evidence(
        {arch: p.blobs for arch, p in facts.platforms.items()},
        hub_sizes=facts.hub_sizes,
        manifests={arch: p.digest for arch, p in facts.platforms.items()},
        previous=await previous_sizes(session, image_id, previous),
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
