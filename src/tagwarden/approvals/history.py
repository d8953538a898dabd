"""Which tags of an image were approved before: what size growth, package diffs and new
vulnerabilities are measured against. Evidence knows digests; what was approved, and when, is
approvals' knowledge, so the lookups live here and evidence is handed their answers."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestStatus
from tagwarden.catalogue.models import Image
from tagwarden.evidence import sizes
from tagwarden.evidence.models import DigestEvidence

# A tag request that was approved and names its digest: image-level requests have neither.
_APPROVED_TAG = (
    ApprovalRequest.status == RequestStatus.APPROVED,
    ApprovalRequest.tag_name.is_not(None),
    ApprovalRequest.digest.is_not(None),
)
_NEWEST_FIRST = (ApprovalRequest.reviewed_at.desc(), ApprovalRequest.id.desc())


async def previous_approved(
    session: AsyncSession, image_id: int, digest: str
) -> tuple[str, str] | None:
    """(tag, digest) of the image's most recently approved tag with another digest."""
    row = (
        await session.execute(
            select(ApprovalRequest.tag_name, ApprovalRequest.digest)
            .where(
                ApprovalRequest.image_id == image_id,
                ApprovalRequest.digest != digest,
                *_APPROVED_TAG,
            )
            .order_by(*_NEWEST_FIRST)
            .limit(1)
        )
    ).first()
    return None if row is None else (str(row[0]), str(row[1]))


async def latest_approved_sizes(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(image, architecture, compressed bytes) of each image's most recently approved tag."""
    newest = (
        select(
            ApprovalRequest.image_id,
            ApprovalRequest.digest,
            func.row_number()
            .over(partition_by=ApprovalRequest.image_id, order_by=_NEWEST_FIRST)
            .label("rank"),
        )
        .where(*_APPROVED_TAG)
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


async def previous_approved_many(
    session: AsyncSession, pairs: Collection[tuple[int, str]]
) -> dict[tuple[int, str], tuple[str, str]]:
    """:func:`previous_approved` of many (image, digest) pairs at once (the re-match's): one
    query per thousand images, not one per pair."""
    images = sorted({i for i, _ in pairs})
    approved: dict[int, list[tuple[str, str]]] = {}
    for start in range(0, len(images), 1000):
        rows = await session.execute(
            select(ApprovalRequest.image_id, ApprovalRequest.tag_name, ApprovalRequest.digest)
            .where(ApprovalRequest.image_id.in_(images[start : start + 1000]), *_APPROVED_TAG)
            .order_by(*_NEWEST_FIRST)
        )
        for image_id, tag, digest in rows.all():
            approved.setdefault(image_id, []).append((str(tag), str(digest)))
    found: dict[tuple[int, str], tuple[str, str]] = {}
    for image_id, digest in pairs:
        other = next((t for t in approved.get(image_id, []) if t[1] != digest), None)
        if other is not None:
            found[(image_id, digest)] = other
    return found


async def live_digests(session: AsyncSession) -> set[tuple[int, str]]:
    """(image, digest) of every tag request under review or approved: what a re-match checks
    besides the activated tags."""
    rows = await session.execute(
        select(ApprovalRequest.image_id, ApprovalRequest.digest).where(
            ApprovalRequest.status.in_([RequestStatus.PENDING, RequestStatus.APPROVED]),
            ApprovalRequest.tag_name.is_not(None),
            ApprovalRequest.digest.is_not(None),
        )
    )
    return {(int(i), str(d)) for i, d in rows.all()}
