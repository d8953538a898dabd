"""Checking one image (seed 001): what was seen, what the registry says, and what to ask.

The steps are apart on purpose: no database transaction stays open while the registry is slow,
and the outcome (monitor/record.py) is written in one transaction, so a failure half-way
leaves nothing half-recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.states import ImageStatus
from tagwarden.devices.models import DeviceApp
from tagwarden.errors import Conflict, NotFound
from tagwarden.monitor.discovery import (
    KnownTag,
    Plan,
    TagFilter,
    needs_resolving,
    newest_first,
    plan,
)
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.references import is_signature_tag
from tagwarden.registry.base import (
    ImageNotFound,
    MalformedResponse,
    Platform,
    RegistryClient,
    RemoteTag,
)

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
    watch_tags: tuple[str, ...] = ()

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
            watch_tags=tuple(image.watch_tags or ()),
        )

    @property
    def wanted(self) -> TagFilter:
        return TagFilter(self.tag_include, self.tag_exclude, self.watch_tags)


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
            DiscoveredTag.last_updated,
        ).where(DiscoveredTag.image_id.in_(image_ids))
    )
    known: dict[int, dict[str, KnownTag]] = {}
    for image_id, tag, digest, platforms, first_seen, updated in rows.all():
        known.setdefault(image_id, {})[tag] = KnownTag(
            tag, digest, platforms or {}, first_seen, updated
        )
    return known


async def load_tracked(session: AsyncSession, image_ids: Collection[int]) -> dict[int, set[str]]:
    """Image id → the tags someone asked about (a request, pending or decided), activated (an
    image_tags row) or deploys (a device's target): the ones a rescan looks at again, and whose
    re-push is worth a request. An image's watch_tags are its Target's, not read here."""
    if not image_ids:
        return {}
    requested = select(ApprovalRequest.image_id, ApprovalRequest.tag_name).where(
        ApprovalRequest.image_id.in_(image_ids), ApprovalRequest.tag_name.is_not(None)
    )
    activated = select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(image_ids))
    deployed = select(DeviceApp.image_id, DeviceApp.tag).where(
        DeviceApp.image_id.in_(image_ids), DeviceApp.tag.is_not(None)
    )
    rows = await session.execute(requested.union(activated, deployed))
    tracked: dict[int, set[str]] = {}
    for image_id, tag in rows.all():
        tracked.setdefault(int(image_id), set()).add(str(tag))
    return tracked


def worth_a_look(
    known: Mapping[str, KnownTag], wanted: TagFilter, tracked: Collection[str]
) -> Callable[[str], bool]:
    """The listed tags a rescan spends a request on: new ones the filters want, and the
    tracked ones (their re-push is news). A known, untracked tag costs nothing: it stays as
    it was seen."""
    return lambda name: name in tracked or (name not in known and wanted(name))


# Digest → what was recorded of it elsewhere than discovered_tags (the monitor's requests).
Recall = Callable[[Collection[str]], Awaitable[Mapping[str, KnownTag]]]


async def recorded_in_requests(
    session: AsyncSession, image_id: int, digests: Collection[str]
) -> dict[str, KnownTag]:
    """Digest → what the monitor's own requests recorded of it (platforms, date): a digest no
    discovered tag holds any more (its tag was re-pushed since) is still not resolved again.
    Requests made by people are not read: their metadata is what they typed."""
    if not digests:
        return {}
    rows = await session.execute(
        select(ApprovalRequest.digest, ApprovalRequest.metadata_, ApprovalRequest.requested_at)
        .where(ApprovalRequest.image_id == image_id, ApprovalRequest.digest.in_(digests))
        .order_by(ApprovalRequest.id)
    )
    found: dict[str, KnownTag] = {}
    for digest, meta, requested_at in rows.all():
        platforms = meta.get("platforms") if isinstance(meta, dict) else None
        if meta.get("source") != MONITOR or not isinstance(platforms, dict) or not platforms:
            continue
        if not all(isinstance(d, str) for d in platforms.values()):
            continue
        try:
            updated = datetime.fromisoformat(str(meta.get("last_updated") or ""))
        except ValueError:
            updated = None
        found.setdefault(digest, KnownTag("", digest, platforms, requested_at, updated))
    return found


async def fetch(
    client: RegistryClient,
    repository: str,
    known: Mapping[str, KnownTag],
    wanted: TagFilter,
    tracked: Collection[str] = (),
    recall: Recall | None = None,
    *,
    only_newest: bool = False,
) -> list[RemoteTag]:
    """List tags (the client stops early where it can, and asks only about the tags worth a
    look), then resolve what the plan needs: each digest once.

    ``only_newest``: the plan will ask about one new tag at most (a first scan, or policy
    ``latest``). Where the listing dated every tag (Quay's, Harbor's, GitHub's APIs), the
    tags are resolved newest first until one is an image; the older ones stay as listed
    (recorded as seen by digest), so a first scan of 1,000 dated tags costs a few requests."""
    listed = [
        _as_known(t, known.get(t.name))
        async for t in client.iter_tags(
            repository,
            {k: v.digest for k, v in known.items()},
            worth=worth_a_look(known, wanted, tracked),
        )
        # Signatures, attestations and referrer lists live under tags too: never an image.
        if not is_signature_tag(t.name)
    ]
    todo = needs_resolving(listed, known, wanted)
    if not todo:
        return listed
    if only_newest and all(t.last_updated is not None for t in todo):
        resolved, asked = await _resolve_newest(client, repository, todo, known, recall)
    else:
        resolved = await resolve_once(client, repository, todo, known, recall)
        asked = {t.name for t in todo}
    return [resolved.get(t.name, t) for t in listed if t.name in resolved or t.name not in asked]


async def _resolve_newest(
    client: RegistryClient,
    repository: str,
    todo: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    recall: Recall | None,
) -> tuple[dict[str, RemoteTag], set[str]]:
    """Dated tags resolved a digest at a time, newest first, until one has an architecture
    (a Helm chart or an attestation-only tag gives way to the next); the names asked."""
    found: dict[str, RemoteTag] = {}
    asked: set[str] = set()
    by_digest: dict[str, list[RemoteTag]] = {}
    for t in todo:
        if t.digest is not None:
            by_digest.setdefault(t.digest, []).append(t)
    for tag in newest_first(todo):
        if tag.name in asked:
            continue
        same = by_digest.get(tag.digest, [tag]) if tag.digest is not None else [tag]
        asked.update(t.name for t in same)
        found.update(await resolve_once(client, repository, same, known, recall))
        if any(found[t.name].architectures for t in same if t.name in found):
            break
    return found, asked


async def resolve_once(
    client: RegistryClient,
    repository: str,
    todo: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    recall: Recall | None = None,
) -> dict[str, RemoteTag]:
    """Tag name → its details, asked of the registry once per digest (``7``, ``7.2``, ``7.2.5``
    and ``latest`` are one image) and not at all for a digest already recorded with its
    platforms (in ``known``, or what ``recall`` finds). A tag left out of the answer was
    re-pushed between its HEAD and the resolution of its digest's first tag: it is listed
    again, and looked at again, next scan."""
    recorded = {k.digest: k for k in known.values() if k.digest and k.platforms}
    groups: dict[str, list[RemoteTag]] = {}
    found: dict[str, RemoteTag] = {}
    for tag in todo:
        if tag.digest in recorded:
            found[tag.name] = _as_recorded(tag, recorded[tag.digest])
        else:  # a tag whose HEAD named no digest is resolved alone
            groups.setdefault(tag.digest or f"name:{tag.name}", []).append(tag)
    if recall is not None and (digests := [d for d in groups if not d.startswith("name:")]):
        for digest, seen in (await recall(digests)).items():
            found.update((t.name, _as_recorded(t, seen)) for t in groups.pop(digest, []))
    gate = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def resolve(key: str, tags: list[RemoteTag]) -> None:
        async with gate:
            try:
                first = await client.resolve_tag(repository, tags[0].name)
            except (MalformedResponse, ImageNotFound) as exc:
                # One tag that is not an image (a Helm chart, a broken push) or that vanished
                # since the listing must not hide every other tag of the repository. It is
                # kept with no platform: recorded as seen, never asked about.
                log.warning("[ImageMonitor] Skipping %s:%s: %s", repository, tags[0].name, exc)
                found.update((t.name, RemoteTag(t.name, t.digest, None, (), True)) for t in tags)
                return
        found[first.name] = first
        if first.digest == key:
            found.update((t.name, dataclasses.replace(first, name=t.name)) for t in tags[1:])

    await asyncio.gather(*(resolve(key, tags) for key, tags in groups.items()))
    return found


def _as_recorded(tag: RemoteTag, seen: KnownTag) -> RemoteTag:
    """A tag on a digest already recorded, with what was recorded of it: no request. The
    platforms' OS is Linux, as only Linux images are recorded per architecture."""
    platforms = tuple(
        Platform(arch, "linux", d, None) for arch, d in sorted(seen.platforms.items())
    )
    return RemoteTag(tag.name, tag.digest, seen.last_updated, platforms, resolved=True)


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
