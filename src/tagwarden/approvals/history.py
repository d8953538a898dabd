"""Which tags of an image were approved before: what size growth, package diffs and new
vulnerabilities are measured against. Evidence knows digests; what was approved, and when, is
approvals' knowledge, so the lookups live here and evidence is handed their answers."""

from __future__ import annotations

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
