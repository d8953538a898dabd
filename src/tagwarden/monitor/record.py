"""Writing a check's outcome (seed 001's INSERT, and more): discovered tags, approval
requests, the image's schedule — in the caller's one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.service import create_request
from tagwarden.audit import service as audit
from tagwarden.catalogue.models import Image
from tagwarden.db import insert_for
from tagwarden.errors import Conflict
from tagwarden.monitor.discovery import Candidate, KnownTag, Plan, also_tagged
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.service import MONITOR, CheckResult, Target, interval_of
from tagwarden.notify.service import emit
from tagwarden.registry.base import RemoteTag

log = logging.getLogger("tagwarden.monitor")


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
        superseded = await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == request_id, ApprovalRequest.status == "pending")
            .values(
                status="rejected",
                reviewed_by=MONITOR,
                reviewed_at=now,
                notes=f"superseded: the tag was re-pushed as {tag.digest}",
            )
        )
        if getattr(superseded, "rowcount", 0) != 1:
            continue  # a person decided it a moment ago: theirs is the decision on record
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
