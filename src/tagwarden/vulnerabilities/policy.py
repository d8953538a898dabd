"""The vulnerability policy's verdicts and the evidence object (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tagwarden.vulnerabilities.schemas import (
    SeverityCounts,
    VulnerabilityEvidence,
    VulnerabilityPolicy,
)
from tagwarden.vulnerabilities.severity import RANK, Severity, rank
from tagwarden.vulnerabilities.states import ScanStatus


@dataclass(frozen=True, slots=True)
class Found:
    """One finding, as the policy and the evidence see it."""

    osv_id: str
    package: str
    installed: str
    fixed_in: str | None
    severity: str
    aliases: tuple[str, ...] = ()


def allowlisted(policy: VulnerabilityPolicy, finding: Found, now: datetime) -> bool:
    """Harbor's semantics: an entry applies to its id or any alias until it expires."""
    names = {finding.osv_id, *finding.aliases}
    return any(
        entry.id in names and (entry.expires is None or entry.expires > now)
        for entry in policy.allowlist
    )


def blocking(policy: VulnerabilityPolicy, findings: Iterable[Found], now: datetime) -> list[Found]:
    """The findings the policy blocks: ranked at or above ``block_severity`` (``unknown``
    only when that is ``unknown``), with a fix when ``only_fixable``, not allowlisted."""
    if policy.block_severity is None:
        return []
    floor = RANK[Severity(policy.block_severity)]
    return [
        f
        for f in findings
        if rank(f.severity) >= floor
        and (f.fixed_in is not None or not policy.only_fixable)
        and not allowlisted(policy, f, now)
    ]


def blocked_ids(found: Sequence[Found]) -> list[str]:
    return sorted({f.osv_id for f in found})


def evidence(
    status: ScanStatus,
    findings: Sequence[Found],
    *,
    previous_ids: set[str] | None,
    osv_data: datetime | None,
    now: datetime,
) -> VulnerabilityEvidence:
    """``counts`` by each id's highest severity, ``fixable`` ids with a fix for every package
    they hit, and ``new``/``fixed`` against the previous approved tag (none: all are new)."""
    worst: dict[str, str] = {}
    unfixed: set[str] = set()
    for f in findings:
        if f.osv_id not in worst or rank(f.severity) > rank(worst[f.osv_id]):
            worst[f.osv_id] = f.severity
        if f.fixed_in is None:
            unfixed.add(f.osv_id)
    counts = SeverityCounts()
    for severity in worst.values():
        key = severity if severity in RANK else Severity.UNKNOWN.value
        setattr(counts, key, getattr(counts, key) + 1)
    ids = set(worst)
    before = previous_ids or set()
    return VulnerabilityEvidence(
        status=status,
        counts=counts,
        fixable=len(ids - unfixed),
        new=sorted(ids - before),
        fixed=sorted(before - ids),
        osv_data=osv_data,
        checked_at=now,
    )
