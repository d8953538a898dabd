"""The evidence of a page of requests: read in one query per table, and list filters on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Float, SQLColumnExpression, cast, exists, literal, select
from sqlalchemy import func as sql
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.catalogue.models import ImagePolicy
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import (
    EvidenceOut,
    SignaturePolicy,
    SignatureStatus,
    SizePolicy,
)
from tagwarden.evidence.service import evidence_for_many

# What the "unsigned" filter finds: nothing verified the digest, whether no signature was found
# or one was found and did not hold.
UNSIGNED = (SignatureStatus.UNSIGNED.value, SignatureStatus.INVALID.value)


@dataclass(frozen=True, slots=True)
class Policies:
    """An image's evidence policies; an image without a policy row gets the defaults (off)."""

    signature: SignaturePolicy = field(default_factory=SignaturePolicy)
    size: SizePolicy = field(default_factory=SizePolicy)


@dataclass(frozen=True, slots=True)
class PageEvidence:
    evidence: dict[tuple[int, str], EvidenceOut]
    policies: dict[int, Policies]

    def of(self, image_id: int, digest: str | None) -> EvidenceOut:
        """The digest's evidence; empty (both parts null: not collected yet) when unknown."""
        return self.evidence.get((image_id, digest or ""), EvidenceOut())

    def policy(self, image_id: int) -> Policies:
        return self.policies.get(image_id, Policies())


async def policies_for(session: AsyncSession, image_ids: Iterable[int]) -> dict[int, Policies]:
    """The evidence policies of many images in one query."""
    wanted = set(image_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(ImagePolicy.image_id, ImagePolicy.signature_policy, ImagePolicy.size_policy).where(
            ImagePolicy.image_id.in_(wanted)
        )
    )
    return {
        image_id: Policies(
            SignaturePolicy.model_validate(signature or {}), SizePolicy.model_validate(size or {})
        )
        for image_id, signature, size in rows
    }


async def page_evidence(
    session: AsyncSession, keys: Iterable[tuple[int, str | None]]
) -> PageEvidence:
    """Evidence and policies for a page of (image, digest) pairs: two queries, whatever the
    page's length."""
    pairs = list(keys)
    return PageEvidence(
        await evidence_for_many(session, pairs),
        await policies_for(session, (image_id for image_id, _ in pairs)),
    )


def unsigned(
    image_id: SQLColumnExpression[int], digest: SQLColumnExpression[str | None]
) -> ColumnElement[bool]:
    """The digest's signature was checked and nothing verified it (unsigned or invalid).

    A digest never checked is not "unsigned" yet: it is not collected, and a filter that
    promised unsigned digests would otherwise list every request the monitor has not reached.
    """
    status = DigestEvidence.signature["status"].as_string()
    return exists().where(
        DigestEvidence.image_id == image_id,
        DigestEvidence.digest == digest,
        status.in_(UNSIGNED),
    )


def grew_over(
    image_id: SQLColumnExpression[int],
    digest: SQLColumnExpression[str | None],
    percent: float,
    *,
    dialect: str,
) -> ColumnElement[bool]:
    """Some platform of the digest grew more than ``percent`` against the previous approved
    tag (``size.growth_percent``, a JSON object of architecture → percent)."""
    if dialect == "postgresql":
        growth = DigestEvidence.size["growth_percent"]
        each = sql.jsonb_each_text(growth).table_valued("key", "value")
    else:
        each = sql.json_each(DigestEvidence.size, "$.growth_percent").table_valued("value")
    grown = exists(select(literal(1)).select_from(each).where(cast(each.c.value, Float) > percent))
    return exists().where(
        DigestEvidence.image_id == image_id, DigestEvidence.digest == digest, grown
    )
