"""Checking one image (seed 001): what was seen, what the registry says, and what to ask.

The steps are apart on purpose: no database transaction stays open while the registry is slow,
and the outcome (monitor/record.py) is written in one transaction, so a failure half-way
leaves nothing half-recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.states import ImageStatus
from tagwarden.errors import Conflict, NotFound
from tagwarden.monitor.discovery import (
    KnownTag,
    Plan,
    TagFilter,
    needs_resolving,
    plan,
)
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.references import is_signature_tag
from tagwarden.registry.base import ImageNotFound, MalformedResponse, RegistryClient, RemoteTag

log = logging.getLogger("tagwarden.monitor")
MONITOR = "image_monitor"
RESOLVE_CONCURRENCY = 8


@dataclass
class CheckResult:
    image_id: int
    image_name: str
    tags_seen: int = 0
    new_tags: int = 0
    changed_tags: int = 0
    requests_created: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Target:
    """What a check needs to know of an image, read once when the image is claimed."""

    id: int
    display_name: str
    image_name: str
    namespace: str
    registry_host: str
    tag_policy: str
    tag_include: str | None
    tag_exclude: str | None
    check_interval_minutes: int | None

    @classmethod
    def of(cls, image: Image) -> Target:
        return cls(
            id=image.id,
            display_name=image.display_name,
            image_name=image.image_name,
            namespace=image.namespace,
            registry_host=image.registry_host,
            tag_policy=image.tag_policy,
            tag_include=image.tag_include,
            tag_exclude=image.tag_exclude,
            check_interval_minutes=image.check_interval_minutes,
        )

    @property
    def wanted(self) -> TagFilter:
        return TagFilter(self.tag_include, self.tag_exclude)


def interval_of(image: Image | Target, default_minutes: int) -> timedelta:
    return timedelta(minutes=image.check_interval_minutes or default_minutes)


async def load_known(
    session: AsyncSession, image_ids: Collection[int]
) -> dict[int, dict[str, KnownTag]]:
    """What was seen of several images' tags, in one query: image id → tag → the last sighting
    (an image never scanned is absent)."""
    if not image_ids:
        return {}
    rows = await session.execute(
        select(
            DiscoveredTag.image_id,
            DiscoveredTag.tag,
            DiscoveredTag.digest,
            DiscoveredTag.platforms,
            DiscoveredTag.first_seen_at,
        ).where(DiscoveredTag.image_id.in_(image_ids))
    )
    known: dict[int, dict[str, KnownTag]] = {}
    for image_id, tag, digest, platforms, first_seen in rows.all():
        known.setdefault(image_id, {})[tag] = KnownTag(tag, digest, platforms or {}, first_seen)
    return known


async def load_tracked(session: AsyncSession, image_id: int) -> set[str]:
    """Tags someone asked about or activated: the ones whose re-push is worth a request."""
    requested = select(ApprovalRequest.tag_name).where(
        ApprovalRequest.image_id == image_id, ApprovalRequest.tag_name.is_not(None)
    )
    activated = select(ImageTag.tag).where(ImageTag.image_id == image_id)
    rows = await session.scalars(requested.union(activated))
    return {str(tag) for tag in rows.all()}


async def fetch(
    client: RegistryClient, repository: str, known: Mapping[str, KnownTag], wanted: TagFilter
) -> list[RemoteTag]:
    """List tags (the client stops early where it can), then resolve what the plan needs."""
    listed = [
        _as_known(t, known.get(t.name))
        async for t in client.iter_tags(repository, {k: v.digest for k, v in known.items()})
        # Signatures, attestations and referrer lists live under tags too: never an image.
        if not is_signature_tag(t.name)
    ]
    todo = needs_resolving(listed, known, wanted)
    if not todo:
        return listed
    gate = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def resolve(tag: RemoteTag) -> RemoteTag:
        async with gate:
            try:
                return await client.resolve_tag(repository, tag.name)
            except (MalformedResponse, ImageNotFound) as exc:
                # One tag that is not an image (a Helm chart, a broken push) or that vanished
                # since the listing must not hide every other tag of the repository. It is
                # kept with no platform: recorded as seen, never asked about.
                log.warning("[ImageMonitor] Skipping %s:%s: %s", repository, tag.name, exc)
                return RemoteTag(tag.name, tag.digest, None, (), resolved=True)

    resolved = {t.name: t for t in await asyncio.gather(*(resolve(t) for t in todo))}
    return [resolved.get(t.name, t) for t in listed]


def _as_known(tag: RemoteTag, known: KnownTag | None) -> RemoteTag:
    """A Hub API entry without a digest, seen before with the same platforms, is the tag seen
    before: it keeps the digest it had then (no request asks again)."""
    if (
        tag.digest is None
        and known is not None
        and known.digest
        and tag.platforms
        and tag.platform_digests == dict(known.platforms)
    ):
        return dataclasses.replace(tag, digest=known.digest)
    return tag


async def name_digests(
    client: RegistryClient,
    repository: str,
    remote: Sequence[RemoteTag],
    unnamed: Sequence[RemoteTag],
) -> list[RemoteTag]:
    """``remote`` with each tag of ``unnamed`` given its digest by one registry HEAD.

    Only the tags that are to become requests are asked about (the Hub API gave the rest their
    platforms, which is enough to record them as seen). A tag gone since the listing is kept
    with no platform, so the plan moves on to the next; any other failure is the check's.
    """
    gate = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def name(tag: RemoteTag) -> RemoteTag:
        async with gate:
            try:
                digest = await client.tag_digest(repository, tag.name)
            except ImageNotFound as exc:
                log.warning("[ImageMonitor] Skipping %s:%s: %s", repository, tag.name, exc)
                return RemoteTag(tag.name, None, tag.last_updated, (), resolved=True)
        log.info("[ImageMonitor] %s:%s has no digest in the Hub API; the registry says %s",
                 repository, tag.name, digest)  # fmt: skip
        return dataclasses.replace(tag, digest=digest)

    named = {t.name: t for t in await asyncio.gather(*(name(t) for t in unnamed))}
    return [named.get(t.name, t) for t in remote]


def plan_for(
    target: Target,
    remote: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    tracked: Collection[str] = (),
) -> Plan:
    return plan(remote, known, policy=target.tag_policy, wanted=target.wanted, tracked=tracked)


async def checkable_image(session: AsyncSession, image_id: int) -> Image:
    """Only approved images are checked (seed 001: "Only approved images can be monitored")."""
    image = await session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    if image.approval_status != ImageStatus.APPROVED:
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; only approved images are "
            "checked",
            code="image_not_approved",
        )
    return image
