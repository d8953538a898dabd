"""Evidence use cases: read the evidence of a digest, store a check's result (an upsert)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.db import insert_for, utcnow
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import EvidenceOut, SignatureEvidence


async def evidence_for(session: AsyncSession, image_id: int, digest: str | None) -> EvidenceOut:
    """The evidence of one digest; empty for a digest never checked (or no digest at all)."""
    if digest is None:
        return EvidenceOut()
    row = await session.scalar(
        select(DigestEvidence).where(
            DigestEvidence.image_id == image_id, DigestEvidence.digest == digest
        )
    )
    return _out(row)


async def evidence_for_many(
    session: AsyncSession, keys: Iterable[tuple[int, str | None]]
) -> dict[tuple[int, str], EvidenceOut]:
    """``evidence_for`` of many (image, digest) pairs in one query (a page of requests)."""
    wanted = {(i, d) for i, d in keys if d is not None}
    if not wanted:
        return {}
    rows = await session.scalars(
        select(DigestEvidence).where(
            tuple_(DigestEvidence.image_id, DigestEvidence.digest).in_(list(wanted))
        )
    )
    return {(r.image_id, r.digest): _out(r) for r in rows}


def _out(row: DigestEvidence | None) -> EvidenceOut:
    if row is None:
        return EvidenceOut()
    signature = SignatureEvidence.model_validate(row.signature) if row.signature else None
    return EvidenceOut(signature=signature, size=row.size)


async def _upsert(
    session: AsyncSession, image_id: int, digest: str, column: str, value: dict[str, Any]
) -> None:
    # ON CONFLICT, not read-then-insert: the monitor, an on-demand check and a rollout start may
    # all store the same digest's evidence at once.
    insert = insert_for(session)
    now = utcnow()
    statement = insert(DigestEvidence).values(
        image_id=image_id, digest=digest, updated_at=now, **{column: value}
    )
    statement = statement.on_conflict_do_update(
        index_elements=["image_id", "digest"], set_={column: value, "updated_at": now}
    )
    await session.execute(statement)
    # An ORM copy loaded earlier in this session must not hide the new value.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, DigestEvidence) and (obj.image_id, obj.digest) == (image_id, digest):
            session.expire(obj)


async def store_signature(
    session: AsyncSession, image_id: int, digest: str, evidence: SignatureEvidence
) -> None:
    await _upsert(session, image_id, digest, "signature", evidence.model_dump(mode="json"))


async def store_size(
    session: AsyncSession, image_id: int, digest: str, size: dict[str, Any]
) -> None:
    await _upsert(session, image_id, digest, "size", size)
