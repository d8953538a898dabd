"""Writing checks' outcomes (seed 001's INSERT, and more): discovered tags, approval
requests, the images' schedules — a batch of checks in the caller's one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.checks import scan_request_digest
from tagwarden.approvals.history import previous_approved
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.service import NewRequest, create_requests, supersede
from tagwarden.approvals.states import RequestStatus
from tagwarden.catalogue.models import Image
from tagwarden.db import insert_for
from tagwarden.evidence.checker import Subject, store_with_events
from tagwarden.evidence.schemas import SignatureEvidence
from tagwarden.evidence.sizing import SizeFacts, announce_growth, record_sizes
from tagwarden.monitor.discovery import Candidate, KnownTag, Plan, also_tagged
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.monitor.service import MONITOR, CheckResult, Target, interval_of
from tagwarden.notify.service import emit_many
from tagwarden.registry.base import RemoteTag
from tagwarden.rules.service import judge_new

log = logging.getLogger("tagwarden.monitor")


def request_metadata(
    candidate: Candidate,
    remote: Sequence[RemoteTag],
    known: Mapping[str, KnownTag],
    now: datetime,
) -> dict[str, Any]:
    """The seeds' metadata (digest, last_updated, architectures, auto_detected, source) and more:
    what tagwarden saw (platforms, first_seen, also_tagged) and what the registry said of the
    tag (platform_details, full_size, media_type, pushed_by; each only where it said it)."""
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
        "platform_details": platform_details(tag),
    }
    said: dict[str, Any] = {
        "full_size": tag.full_size,
        "media_type": _said(tag.media_type, 255),
        "pushed_by": _said(tag.pushed_by, 255),
        "registry_evidence": tag.evidence,
    }
    metadata.update((key, value) for key, value in said.items() if value is not None)
    if candidate.reason == "digest_changed":
        metadata["reason"] = "digest_changed"
        metadata["old_digest"] = candidate.old_digest
        metadata["changed_platforms"] = list(candidate.changed_platforms)
    return metadata


def platform_details(tag: RemoteTag) -> dict[str, dict[str, Any]]:
    """Architecture → ``{"os", "size"}`` (size: compressed bytes, where the registry said), the
    Linux image where one architecture has several, as ``platforms`` picks its digest."""
    details: dict[str, dict[str, Any]] = {}
    for platform in sorted(tag.platforms, key=lambda p: p.os != "linux"):
        if platform.architecture in details:
            continue
        entry: dict[str, Any] = {}
        if (os := _said(platform.os, 64)) is not None:
            entry["os"] = os
        if platform.size is not None:
            entry["size"] = platform.size
        details[platform.architecture] = entry
    return details


def _said(value: str | None, limit: int) -> str | None:
    """A registry's text, kept only if short and storable (PostgreSQL's JSONB holds no NUL)."""
    if value is None or len(value) > limit or "\x00" in value:
        return None
    return value


@dataclass(frozen=True)
class Outcome:
    """What one check learnt, before it is written: the registry's answer and the plan, or the
    error that stopped it."""

    target: Target
    remote: Sequence[RemoteTag] = ()
    known: Mapping[str, KnownTag] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)
    error: str | None = None
    # digest → what its signatures showed, for the digests about to become requests.
    signatures: Mapping[str, SignatureEvidence] = field(default_factory=dict)
    sizes: Mapping[str, SizeFacts] = field(default_factory=dict)  # digest → what was read
    # The digests whose SBOMs were collected: matched against the OSV data with the requests.
    sboms: frozenset[str] = frozenset()


async def record_outcomes(
    session: AsyncSession,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    default_interval_minutes: int,
    then: AfterApproval,
) -> list[CheckResult]:
    """Write several checks' outcomes in the caller's one transaction; their results, in order.

    ``then`` is what follows a rule's approval of a new request, from the caller's settings.

    A scan's checks finish faster than one transaction each can be written (see
    bench/monitor_scan.py): each step here is one statement for the whole batch (the
    schedules, the discovered tags, the request lookups and inserts), not one per image.
    """
    previous_error = await _record_schedules(session, outcomes, now, default_interval_minutes)
    present = [o for o in outcomes if o.target.id in previous_error]
    checked = [o for o in present if o.error is None]
    await _record_discovered(session, checked, now)
    candidates = [(o, c) for o in checked for c in o.plan.candidates]
    await emit_many(session, _events(present, previous_error, candidates))
    requested = await _request_approvals(session, candidates, now, then)
    results = []
    for o in outcomes:
        result = CheckResult(o.target.id, o.target.display_name, error=o.error)
        if o.target.id not in previous_error:
            result.error = "image no longer exists"
        elif o.error is None:
            result.tags_seen = len(o.remote)
            result.new_tags = len(o.plan.new)
            result.changed_tags = len(o.plan.changed)
            result.requests_created = requested.get(o.target.id, [])
        results.append(result)
    return results


async def _record_schedules(
    session: AsyncSession, outcomes: Sequence[Outcome], now: datetime, default_interval: int
) -> dict[int, str | None]:
    """The images' next checks and errors; returns the images that still exist, each with the
    error it had before this check (a notification says when an image starts failing, not on
    every failed check of a long outage)."""
    images = cast(Table, Image.__table__)
    # The schedule first, in id order: the UPDATE takes the rows' write locks (PostgreSQL) or
    # the database's (SQLite) before anything is read, so an image deleted meanwhile is simply
    # absent below, and two writers lock shared images in one order instead of deadlocking.
    # Core executemany, not the ORM's bulk UPDATE, which raises on a row that is gone.
    await session.execute(
        update(images)
        .where(images.c.id == bindparam("image_id"))
        .values(last_checked_at=bindparam("checked_at"), next_check_at=bindparam("next_at")),
        [
            {
                "image_id": o.target.id,
                "checked_at": now,
                "next_at": now + interval_of(o.target, default_interval),
            }
            for o in sorted(outcomes, key=lambda o: o.target.id)
        ],
    )
    found = await session.execute(
        select(images.c.id, images.c.last_error).where(
            images.c.id.in_([o.target.id for o in outcomes])
        )
    )
    previous_error: dict[int, str | None] = dict(found.all())
    errors = [
        {"image_id": o.target.id, "error": error}
        for o in outcomes
        if o.target.id in previous_error
        and (error := o.error[:2000] if o.error is not None else None)
        != previous_error[o.target.id]
    ]
    if errors:
        await session.execute(
            update(images)
            .where(images.c.id == bindparam("image_id"))
            .values(last_error=bindparam("error")),
            errors,
        )
    return previous_error


def _events(
    present: Sequence[Outcome],
    previous_error: Mapping[int, str | None],
    candidates: Sequence[tuple[Outcome, Candidate]],
) -> list[tuple[str, dict[str, Any]]]:
    """The batch's notifications: images that started failing, tags re-pushed."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("monitor.error", {"image_id": o.target.id, "image": o.target.display_name,
                           "error": o.error[:500]})
        for o in present
        if o.error is not None and previous_error[o.target.id] is None
    ]  # fmt: skip
    for o, c in candidates:
        if c.reason == "digest_changed":
            events.append(("tag.digest_changed", {
                "image_id": o.target.id,
                "image": o.target.display_name,
                "tag": c.tag.name,
                "digest": c.tag.digest,
                "old_digest": c.old_digest,
                "changed_platforms": list(c.changed_platforms),
            }))  # fmt: skip
    return events


async def _request_approvals(
    session: AsyncSession,
    candidates: Sequence[tuple[Outcome, Candidate]],
    now: datetime,
    then: AfterApproval,
) -> dict[int, list[str]]:
    """Create the candidates' requests, then let the images' rules judge them; image id → the
    tags a request was created for."""
    wanted = await _make_way(session, candidates, now)
    # The evidence first: the rules that judge the new requests read it.
    for o, c in wanted:
        found = o.signatures.get(c.tag.digest or "")
        if found is not None and c.tag.digest:
            subject = Subject(o.target.id, o.target.display_name, o.target.registry_host, "")
            await store_with_events(session, subject, c.tag.digest, found, tag=c.tag.name)
    grown = await _record_sizes(session, wanted, now)
    await _scan_vulnerabilities(session, wanted)
    drafts = [
        NewRequest(
            o.target.id,
            o.target.display_name,
            c.tag.name,
            request_metadata(c, o.remote, o.known, now),
        )
        for o, c in wanted
    ]
    created = await create_requests(session, drafts, actor=MONITOR)
    made = [(request_id, d) for request_id, d in zip(created, drafts, strict=True) if request_id]
    await judge_new(session, made, now=now, then=then)
    requested: dict[int, list[str]] = {}
    for (o, c), request_id in zip(wanted, created, strict=True):
        if request_id is None:
            continue  # another replica created it a moment ago
        requested.setdefault(o.target.id, []).append(c.tag.name)
        if (evidence := grown.get((o.target.id, c.tag.digest or ""))) is not None:
            await announce_growth(
                session,
                o.target.id,
                o.target.display_name,
                c.tag.name,
                c.tag.digest or "",
                evidence,
            )
    return requested


async def _record_sizes(
    session: AsyncSession, wanted: Sequence[tuple[Outcome, Candidate]], now: datetime
) -> dict[tuple[int, str], dict[str, Any]]:
    """Store the size evidence read for the tags about to be requested, before the requests
    (their rules judge it); the evidence stored, by (image, digest)."""
    stored: dict[tuple[int, str], dict[str, Any]] = {}
    for o, c in wanted:
        facts = o.sizes.get(c.tag.digest or "")
        if facts is None or c.tag.digest is None or (o.target.id, c.tag.digest) in stored:
            continue
        previous = await previous_approved(session, o.target.id, c.tag.digest)
        evidence = await record_sizes(
            session, o.target.id, c.tag.digest, facts, previous=previous, now=now
        )
        if evidence is not None:
            stored[(o.target.id, c.tag.digest)] = evidence
    return stored


async def _scan_vulnerabilities(
    session: AsyncSession, wanted: Sequence[tuple[Outcome, Candidate]]
) -> None:
    """The vulnerability evidence of the tags about to be requested whose SBOMs are stored,
    after their sizes (which name their platforms) and before the rules and the gate read it."""
    done: set[tuple[int, str]] = set()
    for o, c in wanted:
        digest = c.tag.digest
        if digest is None or digest not in o.sboms or (o.target.id, digest) in done:
            continue
        done.add((o.target.id, digest))
        await scan_request_digest(session, o.target.id, digest)


def log_created(outcomes: Sequence[Outcome], results: Sequence[CheckResult]) -> None:
    """The seed's lines for the requests a batch created, once it is committed (a batch
    written again one check at a time must not say it twice)."""
    for o, result in zip(outcomes, results, strict=True):
        if result.error is None and o.plan.candidates and o.plan.candidates[0].reason == "new":
            log.info(
                "[ImageMonitor] Creating approval request for most recent: %s:%s",
                o.target.display_name,
                o.plan.candidates[0].tag.name,
            )
        for tag in result.requests_created:
            log.info("[ImageMonitor] ✅ Created approval request for %s:%s", result.image_name, tag)


async def _record_discovered(
    session: AsyncSession, checked: Sequence[Outcome], now: datetime
) -> None:
    """Every unseen tag and every re-push of the batch, in one executemany upsert."""
    rows = [
        {
            "image_id": o.target.id,
            "tag": t.name,
            "digest": t.digest,
            "architectures": t.architectures,
            "platforms": t.platform_digests,
            "last_updated": t.last_updated,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for o in checked
        for t in [
            # A tag without a digest is recorded too when the Hub API gave its platforms: seen,
            # so it is never taken for new again, and its platforms tell a later change. So is
            # one an OCI registry listed that was not worth a HEAD (the filters refuse it): seen
            # by name only, so it costs nothing at the next scan either.
            *(
                t
                for t in o.remote
                if (t.digest or t.platforms or not t.resolved) and t.name not in o.known
            ),
            *o.plan.changed,
            *o.plan.first_looked,
        ]
    ]
    if not rows:
        return
    # Executemany form: compiled once and cached, where a multi-row VALUES is compiled anew for
    # every row count (it dominated the monitor's CPU time in bench/monitor_scan.py).
    statement = insert_for(session)(cast(Table, DiscoveredTag.__table__))
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


async def _make_way(
    session: AsyncSession, candidates: Sequence[tuple[Outcome, Candidate]], now: datetime
) -> list[tuple[Outcome, Candidate]]:
    """The candidates a request may be created for, from one lookup of their tags' requests.

    Never twice for one tag and digest, pending or decided (a rejection sticks). A pending
    request for an older digest of the tag no longer describes what would deploy: it is closed
    as superseded, with an audit entry, so the new digest can be asked about.
    """
    if not candidates:
        return []
    rows = (
        await session.execute(
            select(
                ApprovalRequest.id,
                ApprovalRequest.image_id,
                ApprovalRequest.tag_name,
                ApprovalRequest.digest,
                ApprovalRequest.status,
            ).where(
                ApprovalRequest.image_id.in_({o.target.id for o, _ in candidates}),
                ApprovalRequest.tag_name.in_({c.tag.name for _, c in candidates}),
            )
        )
    ).all()
    asked: dict[tuple[int, str | None], list[tuple[int, str | None, str]]] = {}
    for request_id, image_id, tag_name, digest, status in rows:
        asked.setdefault((image_id, tag_name), []).append((request_id, digest, status))
    wanted = []
    for o, c in candidates:
        earlier = asked.get((o.target.id, c.tag.name), [])
        if any(digest == c.tag.digest for _, digest, _ in earlier):
            continue
        for request_id, digest, status in earlier:
            if status == RequestStatus.PENDING:
                await supersede(
                    session,
                    request_id,
                    digest=digest,
                    new_digest=c.tag.digest,
                    actor=MONITOR,
                    now=now,
                )
        wanted.append((o, c))
    return wanted
