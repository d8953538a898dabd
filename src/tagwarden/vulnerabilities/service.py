"""Vulnerability use cases: import OSV data and re-match, a digest's evidence and findings,
and the approval gate."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestStatus
from tagwarden.catalogue.models import ImagePolicy, ImageTag
from tagwarden.db import utcnow
from tagwarden.errors import Conflict, NotFound
from tagwarden.evidence.service import store_vulnerabilities
from tagwarden.vulnerabilities import policy as verdicts
from tagwarden.vulnerabilities import recall, rematch
from tagwarden.vulnerabilities.importer import ImportResult, data_date, import_records
from tagwarden.vulnerabilities.models import Finding, Sbom
from tagwarden.vulnerabilities.osv import Record
from tagwarden.vulnerabilities.policy import Found
from tagwarden.vulnerabilities.schemas import VulnerabilityPolicy
from tagwarden.vulnerabilities.states import ScanStatus

Pair = tuple[int, str]


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


async def _previous(session: AsyncSession, pairs: Iterable[Pair]) -> dict[Pair, tuple[str, str]]:
    """Each pair's image's most recently approved tag with another digest: (tag, digest)."""
    images = sorted({i for i, _ in pairs})
    approved: dict[int, list[tuple[str, str]]] = {}
    for part in rematch.chunks(images, 1000):
        rows = await session.execute(
            select(ApprovalRequest.image_id, ApprovalRequest.tag_name, ApprovalRequest.digest)
            .where(
                ApprovalRequest.image_id.in_(list(part)),
                ApprovalRequest.status == RequestStatus.APPROVED,
                ApprovalRequest.tag_name.is_not(None),
                ApprovalRequest.digest.is_not(None),
            )
            .order_by(ApprovalRequest.reviewed_at.desc(), ApprovalRequest.id.desc())
        )
        for image_id, tag, digest in rows.all():
            approved.setdefault(image_id, []).append((str(tag), str(digest)))
    found: dict[Pair, tuple[str, str]] = {}
    for image_id, digest in pairs:
        other = next((t for t in approved.get(image_id, []) if t[1] != digest), None)
        if other is not None:
            found[(image_id, digest)] = other
    return found


async def refresh_evidence(
    session: AsyncSession,
    platforms: dict[Pair, set[str]],
    sboms: dict[str, Sbom],
    findings: dict[str, list[Found]],
    *,
    now: datetime,
) -> None:
    """Store the vulnerability evidence of each (image, digest) from its platforms' findings."""
    osv_data = await data_date(session)
    previous = await _previous(session, platforms)
    wanted = {
        p
        for (image_id, _), prev in previous.items()
        for p in platforms.get((image_id, prev[1]), {prev[1]})
        if p not in findings
    }
    if wanted:
        for row in await rematch.stored_findings(session, wanted):
            findings.setdefault(row.digest, []).append(rematch.as_found(row))
    for (image_id, digest), own in platforms.items():
        status = _status(sboms.get(d) for d in own)
        if osv_data is None:
            status = ScanStatus.DISABLED
        mine = [f for d in sorted(own) for f in findings.get(d, [])]
        prev = previous.get((image_id, digest))
        before: set[str] | None = None
        if prev is not None:
            prev_platforms = platforms.get((image_id, prev[1]), {prev[1]})
            before = {f.osv_id for d in prev_platforms for f in findings.get(d, [])}
        out = verdicts.evidence(status, mine, previous_ids=before, osv_data=osv_data, now=now)
        if prev is not None:
            out.previous = {"tag": prev[0], "digest": prev[1]}
        await store_vulnerabilities(session, image_id, digest, out.model_dump(mode="json"))


async def rematch_all(session: AsyncSession, *, actor: str) -> RematchResult:
    """Match every stored SBOM in scope against the OSV data now in the database, store the
    findings and the evidence, and recall activated tags that gained a blocking finding."""
    now = utcnow()
    scope = await rematch.scope(session)
    sboms = await rematch.load_sboms(session, scope.all_platforms())
    matched = await rematch.match_all(session, sboms)
    ecosystems = {
        d: {str(p.get("name")): str(p.get("ecosystem")) for p in s.packages or []}
        for d, s in sboms.items()
    }
    added = await rematch.store_findings(session, matched, ecosystems)
    await refresh_evidence(session, scope.platforms, sboms, dict(matched), now=now)
    recalled = await recall.apply_recalls(session, scope, added, actor=actor, now=now)
    return RematchResult(
        digests=len(matched),
        packages=sum(len(s.packages or []) for s in sboms.values()),
        findings=sum(len(f) for f in matched.values()),
        new_findings=sum(len(f) for f in added.values()),
        recalled=recalled,
    )


async def import_and_rematch(
    session: AsyncSession,
    records: Iterable[Record],
    *,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[ImportResult, RematchResult]:
    """``tagwarden osv import``: the records, then the re-match and its recalls, as one
    transaction, so no recall is missing once the import has returned."""
    imported = await import_records(session, records, progress=progress)
    return imported, await rematch_all(session, actor=actor)


async def scan_digest(session: AsyncSession, image_id: int, digest: str) -> None:
    """Match one (image, digest)'s stored SBOMs now (after they were stored) and store its
    evidence; what the SBOM step calls."""
    platforms = await rematch.platforms_of(session, [(image_id, digest)])
    sboms = await rematch.load_sboms(session, sorted(platforms[(image_id, digest)]))
    matched = await rematch.match_all(session, sboms)
    ecosystems = {
        d: {str(p.get("name")): str(p.get("ecosystem")) for p in s.packages or []}
        for d, s in sboms.items()
    }
    await rematch.store_findings(session, matched, ecosystems)
    await refresh_evidence(session, platforms, sboms, dict(matched), now=utcnow())


async def findings_of(session: AsyncSession, image_id: int, digest: str | None) -> list[Finding]:
    if digest is None:
        return []
    platforms = await rematch.platforms_of(session, [(image_id, digest)])
    return await rematch.stored_findings(session, platforms[(image_id, digest)])


async def request_findings(session: AsyncSession, request_id: int) -> Sequence[Finding]:
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"approval request {request_id} not found")
    return await findings_of(session, request.image_id, request.digest)


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
