"""Vulnerability use cases: import OSV data and re-match, a digest's evidence and findings,
and the approval gate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.catalogue.models import ImagePolicy, ImageTag
from tagwarden.db import utcnow
from tagwarden.errors import Conflict
from tagwarden.evidence.service import store_vulnerabilities
from tagwarden.vulnerabilities import diff, recall, rematch
from tagwarden.vulnerabilities import policy as verdicts
from tagwarden.vulnerabilities.importer import ImportResult, data_date, import_records
from tagwarden.vulnerabilities.models import Finding, Sbom
from tagwarden.vulnerabilities.osv import Record
from tagwarden.vulnerabilities.policy import Found
from tagwarden.vulnerabilities.schemas import PackagesDiffOut, VulnerabilityPolicy
from tagwarden.vulnerabilities.states import ScanStatus

Pair = tuple[int, str]
# approvals.history.previous_approved_many: pair → its image's previous approved (tag, digest).
PreviousOf = Callable[[AsyncSession, Collection[Pair]], Awaitable[dict[Pair, tuple[str, str]]]]


@dataclass
class RematchResult:
    digests: int = 0
    packages: int = 0
    findings: int = 0
    new_findings: int = 0
    recalled: list[recall.Recalled] = field(default_factory=list)


async def vulnerability_policy(session: AsyncSession, image_id: int) -> VulnerabilityPolicy:
    stored = await session.scalar(
        select(ImagePolicy.vulnerability_policy).where(ImagePolicy.image_id == image_id)
    )
    return VulnerabilityPolicy.model_validate(stored or {})


def _status(sboms: Iterable[Sbom | None]) -> ScanStatus:
    statuses = {s.status for s in sboms if s is not None}
    if statuses & set(rematch.MATCHED):
        return ScanStatus.SCANNED
    if "error" in statuses:
        return ScanStatus.ERROR
    return ScanStatus.NO_SBOM


def _usable(sboms: Mapping[str, Sbom], digests: Iterable[str]) -> dict[str, list[Any]]:
    """Platform digest → its packages, for the digests whose SBOM has packages to compare."""
    return {
        d: list(row.packages or [])
        for d in sorted(digests)
        if (row := sboms.get(d)) is not None and row.status in rematch.MATCHED
    }


def packages_of(
    current: Mapping[str, list[Any]],
    previous: Mapping[str, list[Any]] | None,
    architectures: Mapping[str, str],
) -> PackagesDiffOut | dict[str, PackagesDiffOut] | None:
    """The evidence's ``packages``: :func:`diff.packages_diff` of one platform's lists, or of
    each platform against the previous tag's of the same architecture. ``previous`` None: no
    previous tag (everything is added); empty: one with no packages to compare (no diff)."""
    if not current or previous == {}:
        return None
    before = previous or {}
    if len(current) == 1 and len(before) <= 1:
        (now,) = current.values()
        return PackagesDiffOut.model_validate(
            diff.packages_diff(next(iter(before.values()), []), now)
        )
    by_arch = {architectures.get(d, d): p for d, p in before.items()}
    found: dict[str, PackagesDiffOut] = {}
    for digest, now in current.items():
        arch = architectures.get(digest, digest)
        found[arch] = PackagesDiffOut.model_validate(diff.packages_diff(by_arch.get(arch, []), now))
    return found


async def refresh_evidence(
    session: AsyncSession,
    platforms: dict[Pair, set[str]],
    sboms: dict[str, Sbom],
    findings: dict[str, list[Found]],
    *,
    previous: Mapping[Pair, tuple[str, str]],
    now: datetime,
) -> None:
    """Store the vulnerability evidence of each (image, digest) from its platforms' findings.
    ``previous``: each pair's previous approved (tag, digest), approvals' answer."""
    osv_data = await data_date(session)
    previous = {p: v for p, v in previous.items() if p in platforms}
    prev_pairs = {(i, prev[1]) for (i, _), prev in previous.items()}
    checked = dict(platforms)
    platforms = {**await rematch.platforms_of(session, prev_pairs - platforms.keys()), **platforms}
    wanted = {p for pair in prev_pairs for p in platforms[pair] if p not in findings}
    if wanted:
        for row in await rematch.stored_findings(session, wanted):
            findings.setdefault(row.digest, []).append(rematch.as_found(row))
    prev_platforms = {p for pair in prev_pairs for p in platforms[pair]}
    sboms = {**await rematch.load_sboms(session, sorted(prev_platforms - sboms.keys())), **sboms}
    arches = await rematch.architectures_of(session, platforms.keys())
    for (image_id, digest), own in checked.items():
        status = _status(sboms.get(d) for d in own)
        if osv_data is None:
            status = ScanStatus.DISABLED
        mine = [f for d in sorted(own) for f in findings.get(d, [])]
        prev = previous.get((image_id, digest))
        before: set[str] | None = None
        prev_sboms: dict[str, list[Any]] | None = None
        if prev is not None:
            theirs = platforms[(image_id, prev[1])]
            before = {f.osv_id for d in theirs for f in findings.get(d, [])}
            prev_sboms = _usable(sboms, theirs)
        out = verdicts.evidence(status, mine, previous_ids=before, osv_data=osv_data, now=now)
        if prev is not None:
            out.previous = {"tag": prev[0], "digest": prev[1]}
        out.packages = packages_of(_usable(sboms, own), prev_sboms, arches)
        await store_vulnerabilities(session, image_id, digest, out.model_dump(mode="json"))


async def rematch_all(
    session: AsyncSession,
    *,
    live: Collection[Pair],
    previous_of: PreviousOf,
    actor: str,
) -> RematchResult:
    """Match every stored SBOM in scope against the OSV data now in the database, store the
    findings and the evidence, and recall activated tags that gained a blocking finding.
    ``live``: the pending and approved tag requests' digests; ``previous_of``: the previous
    approved tag of many pairs (both approvals' lookups, handed in by the edge)."""
    now = utcnow()
    scope = await rematch.scope(session, live)
    sboms = await rematch.load_sboms(session, scope.all_platforms())
    matched = await rematch.match_all(session, sboms)
    added = await rematch.store_findings(session, matched, _ecosystems(sboms))
    previous = await previous_of(session, list(scope.platforms))
    await refresh_evidence(
        session, scope.platforms, sboms, dict(matched), previous=previous, now=now
    )
    recalled = await recall.apply_recalls(session, scope, added, actor=actor, now=now)
    return RematchResult(
        digests=len(matched),
        packages=sum(len(s.packages or []) for s in sboms.values()),
        findings=sum(len(f) for f in matched.values()),
        new_findings=sum(len(f) for f in added.values()),
        recalled=recalled,
    )


def _ecosystems(sboms: Mapping[str, Sbom]) -> dict[str, dict[str, str]]:
    return {
        d: {str(p.get("name")): str(p.get("ecosystem")) for p in s.packages or []}
        for d, s in sboms.items()
    }


async def import_and_rematch(
    session: AsyncSession,
    records: Iterable[Record],
    *,
    live: Collection[Pair],
    previous_of: PreviousOf,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[ImportResult, RematchResult]:
    """``tagwarden osv import``: the records, then the re-match and its recalls, as one
    transaction, so no recall is missing once the import has returned."""
    imported = await import_records(session, records, progress=progress)
    return imported, await rematch_all(session, live=live, previous_of=previous_of, actor=actor)


async def scan_digest(
    session: AsyncSession, image_id: int, digest: str, *, previous: tuple[str, str] | None
) -> None:
    """Match one (image, digest)'s stored SBOMs now (after they were stored) and store its
    evidence; what the SBOM step calls. ``previous``: the image's previous approved (tag,
    digest), approvals' answer."""
    pair = (image_id, digest)
    platforms = await rematch.platforms_of(session, [pair])
    sboms = await rematch.load_sboms(session, sorted(platforms[pair]))
    matched = await rematch.match_all(session, sboms)
    await rematch.store_findings(session, matched, _ecosystems(sboms))
    await refresh_evidence(
        session,
        platforms,
        sboms,
        dict(matched),
        previous={} if previous is None else {pair: previous},
        now=utcnow(),
    )


async def findings_of(session: AsyncSession, image_id: int, digest: str | None) -> list[Finding]:
    if digest is None:
        return []
    platforms = await rematch.platforms_of(session, [(image_id, digest)])
    return await rematch.stored_findings(session, platforms[(image_id, digest)])


async def vulnerability_gate(
    session: AsyncSession, image_id: int, digest: str | None, *, step: str, strict: bool = False
) -> None:
    """409 ``vulnerabilities_blocked`` (naming the ids) for a digest with findings the
    image's policy blocks. ``strict`` (a rule's approval): a digest never matched is refused
    too, since only a person may approve what was not checked."""
    policy = await vulnerability_policy(session, image_id)
    if policy.block_severity is None or digest is None:
        return
    found = [rematch.as_found(f) for f in await findings_of(session, image_id, digest)]
    blocked = verdicts.blocked_ids(verdicts.blocking(policy, found, utcnow()))
    if blocked:
        raise Conflict(
            f"{step} refused: {digest} has findings the image's vulnerability policy blocks "
            f"(at or above {policy.block_severity}): {', '.join(blocked[:50])}",
            code="vulnerabilities_blocked",
        )
    if strict and not await _matched(session, image_id, digest):
        raise Conflict(
            f"{step} refused: {digest} has not been matched against OSV data; "
            "a rule approves only a checked digest",
            code="vulnerabilities_blocked",
        )


async def _matched(session: AsyncSession, image_id: int, digest: str) -> bool:
    platforms = await rematch.platforms_of(session, [(image_id, digest)])
    sboms = await rematch.load_sboms(session, sorted(platforms[(image_id, digest)]))
    return _status(sboms.values()) == ScanStatus.SCANNED and await data_date(session) is not None


async def policy_changed(session: AsyncSession, image_id: int, *, actor: str) -> None:
    """Clear the recalls the image's new vulnerability policy no longer supports."""
    policy = await vulnerability_policy(session, image_id)
    digests = (
        await session.scalars(
            select(ImageTag.digest).where(
                ImageTag.image_id == image_id,
                ImageTag.is_recalled.is_(True),
                ImageTag.digest.is_not(None),
            )
        )
    ).all()
    found = {
        str(d): [rematch.as_found(f) for f in await findings_of(session, image_id, d)]
        for d in set(digests)
    }
    await recall.clear_allowlisted(session, image_id, policy, found, actor=actor)
