"""Re-matching stored SBOMs against the OSV data in the database, without pulling an image:
the digests of every pending, approved and activated tag, in time linear in packages times
the records indexed under each package's (ecosystem, name)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.catalogue.models import ImageTag
from tagwarden.db import utcnow
from tagwarden.evidence.models import DigestEvidence
from tagwarden.vulnerabilities.matching import Entry, compile_ranges, index_keys, match_packages
from tagwarden.vulnerabilities.models import Finding, OsvAffected, OsvRecord, Sbom
from tagwarden.vulnerabilities.policy import Found
from tagwarden.vulnerabilities.severity import Severity, highest

T = TypeVar("T")
CHUNK = 5000
MATCHED = ("found", "generated")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Scope:
    """(image, digest) pairs under review or deployable, and each one's platform digests."""

    platforms: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    activated: set[tuple[int, str]] = field(default_factory=set)

    def all_platforms(self) -> list[str]:
        return sorted({d for ds in self.platforms.values() for d in ds})


async def platforms_of(
    session: AsyncSession, pairs: Collection[tuple[int, str]]
) -> dict[tuple[int, str], set[str]]:
    """Each (image, digest)'s platform manifests: the digest itself (a single-platform tag),
    its image_tags rows' platform digests, and the manifests its size evidence read."""
    found: dict[tuple[int, str], set[str]] = {p: {p[1]} for p in pairs}
    listed = list(pairs)
    for part in chunks(listed, 1000):
        rows = await session.execute(
            select(ImageTag.image_id, ImageTag.digest, ImageTag.platform_digest).where(
                tuple_(ImageTag.image_id, ImageTag.digest).in_(list(part))
            )
        )
        for image_id, digest, platform in rows.all():
            if platform and digest:
                found[(image_id, digest)].add(platform)
        sizes = await session.execute(
            select(DigestEvidence.image_id, DigestEvidence.digest, DigestEvidence.size).where(
                tuple_(DigestEvidence.image_id, DigestEvidence.digest).in_(list(part)),
                DigestEvidence.size.is_not(None),
            )
        )
        for image_id, digest, size in sizes.all():
            for blobs in (size or {}).get("blobs", {}).values():
                if isinstance(blobs, dict) and isinstance(blobs.get("manifest"), str):
                    found[(image_id, digest)].add(blobs["manifest"])
    return found


async def architectures_of(
    session: AsyncSession, pairs: Collection[tuple[int, str]]
) -> dict[str, str]:
    """Platform digest → its architecture, where an image_tags row or the size evidence of
    one of ``pairs`` names it (what pairs two tags' platforms for the package diff)."""
    found: dict[str, str] = {}
    for part in chunks(list(pairs), 1000):
        rows = await session.execute(
            select(ImageTag.platform_digest, ImageTag.architecture).where(
                tuple_(ImageTag.image_id, ImageTag.digest).in_(list(part))
            )
        )
        for platform, arch in rows.all():
            if platform and arch:
                found.setdefault(str(platform), str(arch))
        sizes = await session.execute(
            select(DigestEvidence.size).where(
                tuple_(DigestEvidence.image_id, DigestEvidence.digest).in_(list(part)),
                DigestEvidence.size.is_not(None),
            )
        )
        for size in sizes.scalars():
            for arch, blobs in (size or {}).get("blobs", {}).items():
                if isinstance(blobs, dict) and isinstance(blobs.get("manifest"), str):
                    found.setdefault(blobs["manifest"], str(arch))
    return found


async def scope(session: AsyncSession, requested: Collection[tuple[int, str]]) -> Scope:
    """``requested`` (approvals' answer: the pending and approved tag requests' digests) and
    every activated tag's digest, each with its platforms."""
    pairs: set[tuple[int, str]] = set(requested)
    tagged = await session.execute(
        select(ImageTag.image_id, ImageTag.digest).where(ImageTag.digest.is_not(None))
    )
    activated = {(i, str(d)) for i, d in tagged.all()}
    return Scope(await platforms_of(session, pairs | activated), activated)


async def load_sboms(session: AsyncSession, digests: Sequence[str]) -> dict[str, Sbom]:
    found: dict[str, Sbom] = {}
    for part in chunks(digests):
        for row in await session.scalars(select(Sbom).where(Sbom.digest.in_(list(part)))):
            found[row.digest] = row
    return found


async def load_index(
    session: AsyncSession, sboms: Iterable[Sbom]
) -> dict[tuple[str, str], list[Entry]]:
    """The affected entries under the (ecosystem, name) of any package of ``sboms``."""
    keys = {k for s in sboms for p in s.packages or [] for k in index_keys(p)}
    names = sorted({n for _, n in keys})
    index: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for part in chunks(names, 1000):
        rows = await session.execute(
            select(
                OsvAffected.ecosystem,
                OsvAffected.name,
                OsvAffected.record_id,
                OsvAffected.ranges,
                OsvAffected.versions,
                OsvAffected.severity,
                OsvRecord.aliases,
            )
            .join(OsvRecord, OsvRecord.id == OsvAffected.record_id)
            .where(OsvAffected.name.in_(list(part)))
        )
        for ecosystem, name, osv_id, ranges, versions, severity, aliases in rows.all():
            if (ecosystem, name) in keys:
                compiled = compile_ranges(ecosystem, ranges or [])
                entry = Entry(osv_id, compiled, versions or [], severity, tuple(aliases or ()))
                index[(ecosystem, name)].append(entry)
    return index


async def _alias_severities(session: AsyncSession, found: Iterable[Found]) -> dict[str, str]:
    """Distribution records often carry no severity: their aliased CVE records may."""
    wanted = sorted({a for f in found if f.severity == Severity.UNKNOWN for a in f.aliases})
    known: dict[str, str] = {}
    for part in chunks(wanted, 1000):
        rows = await session.execute(
            select(OsvRecord.id, OsvRecord.severity).where(OsvRecord.id.in_(list(part)))
        )
        known.update({str(i): str(s) for i, s in rows.all()})
    return known


async def match_all(session: AsyncSession, sboms: dict[str, Sbom]) -> dict[str, list[Found]]:
    """Digest → its findings now, for every SBOM with packages."""
    usable = [s for s in sboms.values() if s.status in MATCHED]
    index = await load_index(session, usable)
    memo: dict[tuple[str, str, str, str], list[Any]] = {}
    matched = {s.digest: match_packages(s.packages or [], index, memo) for s in usable}
    known = await _alias_severities(session, (f for fs in matched.values() for f in fs))
    if known:
        for digest, found in matched.items():
            matched[digest] = [_with_alias_severity(f, known) for f in found]
    return matched


def _with_alias_severity(finding: Found, known: dict[str, str]) -> Found:
    if finding.severity != Severity.UNKNOWN:
        return finding
    best = highest(known.get(a, Severity.UNKNOWN) for a in finding.aliases)
    if best is Severity.UNKNOWN:
        return finding
    return Found(
        finding.osv_id,
        finding.package,
        finding.installed,
        finding.fixed_in,
        best.value,
        finding.aliases,
    )


def _key(f: Found) -> tuple[str, str, str]:
    return (f.osv_id, f.package, f.installed)


async def store_findings(
    session: AsyncSession, matched: dict[str, list[Found]], ecosystems: dict[str, dict[str, str]]
) -> dict[str, list[Found]]:
    """Replace the stored findings of each digest by ``matched``; what each one gained."""
    digests = sorted(matched)
    stored: dict[str, dict[tuple[str, str, str], Finding]] = defaultdict(dict)
    for part in chunks(digests):
        for row in await session.scalars(select(Finding).where(Finding.digest.in_(list(part)))):
            stored[row.digest][(row.osv_id, row.package, row.installed)] = row
    added: dict[str, list[Found]] = {}
    gone: list[int] = []
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for digest, found in matched.items():
        before = stored.get(digest, {})
        now_keys = {_key(f): f for f in found}
        gone += [r.id for k, r in before.items() if k not in now_keys]
        fresh = [f for k, f in now_keys.items() if k not in before]
        for k, f in now_keys.items():
            old = before.get(k)
            if old is not None and (old.severity, old.fixed_in) != (f.severity, f.fixed_in):
                await session.execute(
                    update(Finding)
                    .where(Finding.id == old.id)
                    .values(severity=f.severity, fixed_in=f.fixed_in)
                )
        if fresh:
            added[digest] = fresh
        rows += [_row(digest, f, ecosystems.get(digest, {}), now) for f in fresh]
    for ids in chunks(gone):
        await session.execute(delete(Finding).where(Finding.id.in_(list(ids))))
    for batch in chunks(rows):
        await session.execute(insert(cast(Table, Finding.__table__)), list(batch))
    return added


def _row(digest: str, f: Found, ecosystems: dict[str, str], now: Any) -> dict[str, Any]:
    return {
        "digest": digest,
        "osv_id": f.osv_id,
        "package": f.package,
        "ecosystem": ecosystems.get(f.package, ""),
        "installed": f.installed,
        "fixed_in": f.fixed_in,
        "severity": f.severity,
        "aliases": list(f.aliases),
        "found_at": now,
    }


def as_found(row: Finding) -> Found:
    return Found(
        row.osv_id, row.package, row.installed, row.fixed_in, row.severity, tuple(row.aliases)
    )


async def stored_findings(session: AsyncSession, digests: Collection[str]) -> list[Finding]:
    found: list[Finding] = []
    for part in chunks(sorted(digests)):
        query = select(Finding).where(Finding.digest.in_(list(part)))
        found += (await session.scalars(query.order_by(Finding.id))).all()
    return found
