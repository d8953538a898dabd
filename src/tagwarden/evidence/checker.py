"""Checking a digest's signatures now: read what is needed, ask the registry with no
transaction open, then store the result in a short transaction of its own.

Used where the registry may have changed since the request was made: on demand, and at the
API's approval, activation and rollout start. The stored result is what the gates then read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.catalogue.models import Image
from tagwarden.db import transaction, utcnow
from tagwarden.errors import NotFound
from tagwarden.evidence import service
from tagwarden.evidence.collect import check_signature
from tagwarden.evidence.schemas import SignatureEvidence, SignatureStatus
from tagwarden.evidence.signatures import LoadedKey
from tagwarden.notify.service import emit_many
from tagwarden.registry.base import RegistryClient, RegistryError
from tagwarden.registry.factory import repository_path

ClientFor = Callable[[str], RegistryClient]


@dataclass(frozen=True, slots=True)
class Subject:
    """What a check needs of an image, read before the registry is asked."""

    image_id: int
    display_name: str
    registry_host: str
    repository: str


async def check_now(
    client_for: ClientFor,
    subject: Subject,
    digest: str,
    keys: dict[str, LoadedKey],
) -> SignatureEvidence:
    try:
        client = client_for(subject.registry_host)
    except RegistryError as exc:  # a host no longer allowed
        return SignatureEvidence(
            status=SignatureStatus.ERROR, reason=str(exc)[:500], checked_at=utcnow()
        )
    return await check_signature(client, subject.repository, digest, keys)


async def store_with_events(
    session: AsyncSession,
    subject: Subject,
    digest: str,
    evidence: SignatureEvidence,
    *,
    tag: str | None,
) -> None:
    """Store a check's result; a result that newly finds the digest unsigned or invalid is
    announced (``tag.unsigned``, ``tag.signature_invalid``), a repeat of the same is not."""
    before = (await service.evidence_for(session, subject.image_id, digest)).signature
    await service.store_signature(session, subject.image_id, digest, evidence)
    if before is not None and (before.status, before.reason) == (evidence.status, evidence.reason):
        return
    await emit_many(
        session,
        service.signature_events(
            evidence, image_id=subject.image_id, image=subject.display_name, tag=tag, digest=digest
        ),
    )


class SignatureChecker:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], client_for: ClientFor
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client_for = client_for

    async def refresh(
        self, image_id: int, digest: str | None, *, tag: str | None = None, always: bool = False
    ) -> SignatureEvidence | None:
        """Check ``digest`` of the image again and store the result; None (nothing asked)
        when the image does not want signatures checked (see service.wants_signatures) and
        ``always`` is not set, or when there is no digest."""
        if digest is None:
            return None
        async with transaction(self.sessionmaker) as session:
            image = await session.get(Image, image_id)
            if image is None:
                raise NotFound(f"image {image_id} not found")
            if not always and not await service.wants_signatures(session, image_id):
                return None
            keys = await service.load_keys(session)
            subject = Subject(
                image.id,
                image.display_name,
                image.registry_host,
                repository_path(image.namespace, image.image_name, image.registry_host),
            )
        evidence = await check_now(self.client_for, subject, digest, keys)
        async with transaction(self.sessionmaker) as session:
            if await session.get(Image, image_id) is not None:
                await store_with_events(session, subject, digest, evidence, tag=tag)
        return evidence
