"""Checking one image (seed 001): read what was seen, ask the registry, record the outcome.

The three steps are apart on purpose: no database transaction stays open while the registry is
slow, and the outcome (discovered tags, approval requests, the image's schedule) is written in
one transaction, so a failure half-way leaves nothing half-recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.service import create_request
from tagwarden.audit import service as audit
from tagwarden.catalogue.models import Image
from tagwarden.db import insert_for
from tagwarden.errors import Conflict, NotFound
from tagwarden.monitor.discovery import (
    Candidate,
    KnownTag,
    Plan,
    TagFilter,
    also_tagged,
    needs_resolving,
    plan,
)
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.notify.service import emit
from tagwarden.registry.base import RegistryClient, RemoteTag

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
        return {
            "image_id": self.image_id,
            "image_name": self.image_name,
            "tags_seen": self.tags_seen,
            "new_tags": self.new_tags,
            "changed_tags": self.changed_tags,
            "requests_created": self.requests_created,
            "error": self.error,
        }


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


async def load_known(session: AsyncSession, image_id: int) -> dict[str, KnownTag]:
    rows = await session.execute(
        select(
            DiscoveredTag.tag,
            DiscoveredTag.digest,
            DiscoveredTag.platforms,
            DiscoveredTag.first_seen_at,
        ).where(DiscoveredTag.image_id == image_id)
    )
    return {
        tag: KnownTag(tag, digest, platforms or {}, first_seen)
        for tag, digest, platforms, first_seen in rows.all()
    }


async def fetch(
    client: RegistryClient, repository: str, known: Mapping[str, KnownTag], wanted: TagFilter
) -> list[RemoteTag]:
    """List tags (the client stops early where it can), then resolve what the plan needs."""
    listed = [
        t async for t in client.iter_tags(repository, {k: v.digest for k, v in known.items()})
    ]
    todo = needs_resolving(listed, known, wanted)
    if not todo:
        return listed
    gate = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def resolve(tag: RemoteTag) -> RemoteTag:
        async with gate:
            return await client.resolve_tag(repository, tag.name)

    resolved = {t.name: t for t in await asyncio.gather(*(resolve(t) for t in todo))}
    return [resolved.get(t.name, t) for t in listed]


def request_metadata(
    candidate: Candidate,
    remote: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    now: datetime,
) -> dict[str, Any]:
    """The seeds' metadata (digest, last_updated, architectures, auto_detected, source) and more."""
    tag = candidate.tag
    seen_before = known.get(tag.name)
    metadata: dict[str, Any] = {
        "digest": tag.digest,
        "last_updated": tag.last_updated.isoformat() if tag.last_updated else None,
        "architectures": tag.architectures,
        "auto_detected": True,
        "source": MONITOR,
        "platforms": tag.platform_digests,
        "first_seen": (seen_before.first_seen_at if seen_before else now).isoformat(),
        "also_tagged": also_tagged(tag, remote, known),
    }
    if candidate.reason == "digest_changed":
        metadata["reason"] = "digest_changed"
        metadata["old_digest"] = candidate.old_digest
        metadata["changed_platforms"] = list(candidate.changed_platforms)
    return metadata


async def _record_discovered(
    session: AsyncSession, image_id: int, tags: Sequence[RemoteTag], now: datetime
) -> None:
    if not tags:
        return
    insert = insert_for(session)
    rows = [
        {
            "image_id": image_id,
            "tag": t.name,
            "digest": t.digest,
            "architectures": t.architectures,
            "platforms": t.platform_digests,
            "last_updated": t.last_updated,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for t in tags
    ]
    # Executemany form: compiled once and cached, where a multi-row VALUES is compiled anew for
    # every row count (it dominated the monitor's CPU time in bench/monitor_scan.py).
    statement = insert(cast(Table, DiscoveredTag.__table__))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["image_id", "tag"],
            set_={
                "digest": statement.excluded.digest,
                "architectures": statement.excluded.architectures,
                "platforms": statement.excluded.platforms,
                "last_updated": statement.excluded.last_updated,
                "last_seen_at": statement.excluded.last_seen_at,
            },
        ),
        rows,
    )


async def _make_way(session: AsyncSession, target: Target, tag: RemoteTag, now: datetime) -> bool:
    """Whether a request for this tag and digest may be created.

    Never twice for one tag and digest, pending or decided (a rejection sticks). A pending
    request for an older digest of the tag no longer describes what would deploy: it is closed
    as superseded, with an audit entry, so the new digest can be asked about.
    """
    rows = (
        await session.execute(
            select(ApprovalRequest.id, ApprovalRequest.digest, ApprovalRequest.status).where(
                ApprovalRequest.image_id == target.id,
                ApprovalRequest.tag_name == tag.name,
                (ApprovalRequest.status == "pending") | (ApprovalRequest.digest == tag.digest),
            )
        )
    ).all()
    if any(digest == tag.digest for _, digest, _ in rows):
        return False
    for request_id, digest, _ in rows:  # only pending ones for another digest are left
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == request_id, ApprovalRequest.status == "pending")
            .values(
                status="rejected",
                reviewed_by=MONITOR,
                reviewed_at=now,
                notes=f"superseded: the tag was re-pushed as {tag.digest}",
            )
        )
        audit.record(
            session,
            actor=MONITOR,
            action="approval.superseded",
            entity_type="approval_request",
            entity_id=request_id,
            before={"status": "pending", "digest": digest},
            after={"status": "rejected", "new_digest": tag.digest},
        )
    return True


async def record_outcome(
    session: AsyncSession,
    target: Target,
    remote: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    the_plan: Plan,
    *,
    now: datetime,
    default_interval_minutes: int,
) -> CheckResult:
    result = CheckResult(
        target.id,
        target.display_name,
        tags_seen=len(remote),
        new_tags=len(the_plan.new),
        changed_tags=len(the_plan.changed),
    )
    scheduled = await session.execute(
        update(Image)
        .where(Image.id == target.id)
        .values(
            last_checked_at=now,
            next_check_at=now + interval_of(target, default_interval_minutes),
            last_error=None,
        )
    )
    if getattr(scheduled, "rowcount", 0) != 1:  # deleted while we asked the registry
        result.error = "image no longer exists"
        return result
    unseen = [t for t in remote if t.digest and t.name not in known]
    await _record_discovered(session, target.id, unseen + the_plan.changed, now)

    if the_plan.candidates and the_plan.candidates[0].reason == "new":
        log.info(
            "[ImageMonitor] Creating approval request for most recent: %s:%s",
            target.display_name,
            the_plan.candidates[0].tag.name,
        )
    for candidate in the_plan.candidates:
        tag = candidate.tag
        if candidate.reason == "digest_changed":
            await emit(
                session,
                "tag.digest_changed",
                {
                    "image_id": target.id,
                    "image": target.display_name,
                    "tag": tag.name,
                    "digest": tag.digest,
                    "old_digest": candidate.old_digest,
                    "changed_platforms": list(candidate.changed_platforms),
                },
            )
        if not await _make_way(session, target, tag, now):
            continue
        try:
            await create_request(
                session,
                image_id=target.id,
                image_name=target.display_name,
                tag_name=tag.name,
                metadata=request_metadata(candidate, remote, known, now),
                actor=MONITOR,
                now=now,
            )
        except Conflict:
            continue  # another replica created it a moment ago
        result.requests_created.append(tag.name)
        log.info(
            "[ImageMonitor] ✅ Created approval request for %s:%s", target.display_name, tag.name
        )
    return result


def nothing_to_record(
    remote: Sequence[RemoteTag], known: Mapping[str, KnownTag], the_plan: Plan
) -> bool:
    """True when a check found no unseen tag, no re-push and nothing to ask: only its schedule
    changes, and that write can join other such checks' in one statement."""
    return (
        not the_plan.candidates
        and not the_plan.changed
        and all(t.name in known or not t.digest for t in remote)
    )


async def record_unchanged(
    session: AsyncSession,
    checked: Sequence[tuple[Target, datetime]],
    *,
    default_interval_minutes: int,
) -> None:
    """The schedule of many checks that found nothing new, in one executemany UPDATE."""
    if not checked:
        return
    await session.execute(
        update(Image),
        [
            {
                "id": target.id,
                "last_checked_at": at,
                "next_check_at": at + interval_of(target, default_interval_minutes),
                "last_error": None,
            }
            for target, at in checked
        ],
    )


async def record_failure(
    session: AsyncSession,
    target: Target,
    error: str,
    *,
    now: datetime,
    default_interval_minutes: int,
) -> None:
    # Notify when an image starts failing, not on every failed check of a long outage.
    previous = await session.scalar(select(Image.last_error).where(Image.id == target.id))
    await session.execute(
        update(Image)
        .where(Image.id == target.id)
        .values(
            last_checked_at=now,
            next_check_at=now + interval_of(target, default_interval_minutes),
            last_error=error[:2000],
        )
    )
    if previous is None:
        await emit(
            session,
            "monitor.error",
            {"image_id": target.id, "image": target.display_name, "error": error[:500]},
        )


def plan_for(target: Target, remote: Sequence[RemoteTag], known: Mapping[str, KnownTag]) -> Plan:
    return plan(remote, known, policy=target.tag_policy, wanted=target.wanted)


async def checkable_image(session: AsyncSession, image_id: int) -> Image:
    """Only approved images are checked (seed 001: "Only approved images can be monitored")."""
    image = await session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    if image.approval_status != "approved":
        raise Conflict(
            f"image {image.display_name} is {image.approval_status}; only approved images are "
            "checked",
            code="image_not_approved",
        )
    return image
