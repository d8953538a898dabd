"""Checking a request's evidence now, before a decision, an activation or on demand: read what
is needed in a short transaction, ask the registry with none open, store the result in another,
so no write lock waits on a registry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.history import previous_approved
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.db import transaction, utcnow
from tagwarden.errors import NotFound
from tagwarden.evidence import sizing
from tagwarden.evidence.checker import SignatureChecker
from tagwarden.evidence.schemas import PolicyMode, SignatureEvidence
from tagwarden.registry.base import RegistryClient, RegistryError
from tagwarden.registry.factory import repository_path
from tagwarden.vulnerabilities import service as vulnerabilities
from tagwarden.vulnerabilities.models import Finding

log = logging.getLogger(__name__)


async def refresh_signatures(
    checker: SignatureChecker, request_id: int, *, always: bool = False
) -> SignatureEvidence | None:
    """The checker's ``refresh`` for a request's digest (a tag request; an image-level one has
    none). Reads the request in its own short transaction."""
    async with transaction(checker.sessionmaker) as session:
        request = await session.get(ApprovalRequest, request_id)
        if request is None:
            raise NotFound(f"approval request {request_id} not found")
        image_id, digest, tag = request.image_id, request.digest, request.tag_name
    if tag is None:
        return None
    return await checker.refresh(image_id, digest, tag=tag, always=always)


async def refresh_sizes(
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
        policy = await sizing.size_policy(session, image_id)
        if only_with_policy and policy.mode == PolicyMode.OFF:
            return None
        host = image.registry_host
        repository = repository_path(image.namespace, image.image_name, host)
        name = image.display_name
    try:
        client = client_for_host(host)
    except RegistryError as exc:  # a host no longer allowed: what the listing said stands
        log.warning("sizes of %s: %s", name, exc)
        facts = sizing.SizeFacts(hub_sizes=dict(said or {}))
    else:
        facts = await sizing.read_sizes(client, repository, digest, dict(said or {}))
    async with transaction(sessionmaker) as session:
        if await session.get(Image, image_id) is None:
            return None
        return await sizing.record_sizes(
            session,
            image_id,
            digest,
            facts,
            previous=await previous_approved(session, image_id, digest),
            now=utcnow(),
        )


async def refresh_request_sizes(
    sessionmaker: async_sessionmaker[AsyncSession],
    client_for_host: Callable[[str], RegistryClient],
    request_id: int,
) -> dict[str, Any] | None:
    """:func:`refresh_sizes` for a request's digest (a tag request; not an image-level one)."""
    async with transaction(sessionmaker) as session:
        request = await session.get(ApprovalRequest, request_id)
        if request is None:
            raise NotFound(f"approval request {request_id} not found")
        image_id, digest, tag = request.image_id, request.digest, request.tag_name
        said = sizing.hub_sizes(request.metadata_)
    if tag is None:
        return None
    return await refresh_sizes(sessionmaker, client_for_host, image_id, digest, said=said)


async def request_findings(session: AsyncSession, request_id: int) -> Sequence[Finding]:
    """The findings of a request's digest (every platform's SBOM), as of the last match."""
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    return await vulnerabilities.findings_of(session, request.image_id, request.digest)


async def scan_request_digest(session: AsyncSession, image_id: int, digest: str | None) -> None:
    """Match a digest's stored SBOMs and store its vulnerability evidence, against the
    image's previous approved tag (what the SBOM step calls once the SBOMs are stored)."""
    if digest is None or await session.get(Image, image_id) is None:
        return
    previous = await previous_approved(session, image_id, digest)
    await vulnerabilities.scan_digest(session, image_id, digest, previous=previous)
