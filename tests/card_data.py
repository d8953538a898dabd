"""Evidence as the monitor stores it, for the approval card's page and browser tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.evidence import service as evidence
from tagwarden.evidence.schemas import SignatureEvidence

MiB = 1024 * 1024
CHECKED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PREVIOUS_DIGEST = "sha256:" + "0" * 63 + "1"


def digest_of(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def signature(status: str, signers: list[str] | None = None, **extra: Any) -> SignatureEvidence:
    return SignatureEvidence.model_validate(
        {"status": status, "signers": signers or [], "checked_at": CHECKED, **extra}
    )


def size(
    platforms: dict[str, int],
    growth: dict[str, float] | None = None,
    new: dict[str, int] | None = None,
    previous_tag: str | None = "7.2.4",
) -> dict[str, Any]:
    """The size evidence's shape (evidence.sizes.size_evidence), without blobs."""
    previous = {"tag": previous_tag, "digest": PREVIOUS_DIGEST} if previous_tag else None
    return {
        "platforms": platforms,
        "previous": previous,
        "growth_percent": growth or {},
        "new_bytes": new or {},
        "blobs": {},
        "source": "manifests",
        "checked_at": CHECKED.isoformat(),
    }


# The card's main example: signed by a named key, two architectures that both grew.
SIGNED = signature("verified", ["release-key"], signed_digest=digest_of(1), signed="index")
GREW = size(
    {"amd64": 30 * MiB, "arm64": 28 * MiB + 512 * 1024},
    growth={"amd64": 4.2, "arm64": 12.5},
    new={"amd64": 1 * MiB, "arm64": 3 * MiB},
)


async def add_request(
    sessionmaker: async_sessionmaker[AsyncSession],
    image_id: int,
    tag: str,
    digest: str,
    *,
    status: str = "pending",
    metadata: dict[str, Any] | None = None,
    signed: SignatureEvidence | None = None,
    sized: dict[str, Any] | None = None,
) -> int:
    """A monitor request for ``tag`` at ``digest``, with the digest's evidence where given."""
    data = {
        "digest": digest,
        "architectures": ["amd64", "arm64"],
        "last_updated": "2026-11-29T10:30:00Z",
        "source": "image_monitor",
        **(metadata or {}),
    }
    async with sessionmaker() as session, session.begin():
        row = ApprovalRequest(
            image_id=image_id,
            image_name="redis",
            tag_name=tag,
            status=status,
            metadata_=data,
            digest=digest,
            requested_by="image_monitor",
        )
        session.add(row)
        await session.flush()
        if signed is not None:
            await evidence.store_signature(session, image_id, digest, signed)
        if sized is not None:
            await evidence.store_size(session, image_id, digest, sized)
        return row.id
