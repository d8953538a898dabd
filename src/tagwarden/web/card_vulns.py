"""The approval card's vulnerabilities part (pure): counts, new and fixed ids against the
previous approved tag, the package diff and the findings, coloured by the image's policy.

A severity at or above the policy's ``block_severity`` is a danger (as the gate refuses it);
below it, or with no ``block_severity``, findings are shown muted, for information.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tagwarden.vulnerabilities.policy import Found, blocking
from tagwarden.vulnerabilities.schemas import (
    FindingOut,
    PackagesDiffOut,
    VulnerabilityEvidence,
    VulnerabilityPolicy,
)
from tagwarden.vulnerabilities.severity import RANK, Severity, rank
from tagwarden.vulnerabilities.states import ScanStatus
from tagwarden.web.card import Tone

SEVERITIES = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.UNKNOWN,
)
STATUS_LABELS = {
    ScanStatus.NO_SBOM: "no SBOM: nothing to match",
    ScanStatus.ERROR: "the SBOM could not be read",
    ScanStatus.DISABLED: "no OSV data imported",
}
PACKAGE_KINDS = ("added", "removed", "upgraded")


@dataclass(frozen=True, slots=True)
class SeverityCount:
    severity: str
    count: int
    tone: Tone


@dataclass(frozen=True, slots=True)
class FindingRow:
    id: str
    package: str
    installed: str
    fixed_in: str | None
    severity: str
    aliases: tuple[str, ...]
    tone: Tone


@dataclass(frozen=True, slots=True)
class PackageChange:
    kind: str
    name: str
    version: str
    # The platform's architecture where the diff is per platform (a multi-platform tag).
    architecture: str | None = None


@dataclass(frozen=True, slots=True)
class VulnView:
    status: str
    label: str
    tone: Tone
    counts: tuple[SeverityCount, ...] = ()
    fixable: int = 0
    osv_data: datetime | None = None
    new: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    previous_tag: str | None = None
    previous_digest: str | None = None
    # None: the package diff is not known (yet); empty: nothing changed.
    packages: tuple[PackageChange, ...] | None = None
    findings: tuple[FindingRow, ...] = ()
    blocked: tuple[str, ...] = ()


def blocks(policy: VulnerabilityPolicy, severity: str) -> bool:
    """Whether a finding of this severity is at or above the policy's ``block_severity``."""
    if policy.block_severity is None:
        return False
    return rank(severity) >= RANK[Severity(policy.block_severity)]


def _change(
    kind: str, item: Mapping[str, Any], architecture: str | None = None
) -> PackageChange | None:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "upgraded":
        version = f"{item.get('previous') or '?'} → {item.get('current') or '?'}"
    else:
        version = str(item.get("version") or "?")
    return PackageChange(kind, name, version, architecture)


def package_changes(
    packages: PackagesDiffOut | Mapping[str, PackagesDiffOut] | Mapping[str, Any] | None,
) -> tuple[PackageChange, ...] | None:
    """The diff as rows: one diff (a single platform), or one per architecture."""
    if packages is None:
        return None
    if isinstance(packages, PackagesDiffOut):
        return _changes(packages.model_dump(), None)
    if any(kind in packages for kind in PACKAGE_KINDS):
        return _changes(packages, None)
    changes: list[PackageChange] = []
    for arch, diff in sorted(packages.items()):
        found = diff.model_dump() if isinstance(diff, PackagesDiffOut) else diff
        if isinstance(found, Mapping):
            changes += _changes(found, str(arch))
    return tuple(changes)


def _changes(packages: Mapping[str, Any], architecture: str | None) -> tuple[PackageChange, ...]:
    changes = []
    for kind in PACKAGE_KINDS:
        items = packages.get(kind)
        for item in items if isinstance(items, list) else []:
            change = _change(kind, item, architecture) if isinstance(item, Mapping) else None
            if change is not None:
                changes.append(change)
    return tuple(changes)


def finding_rows(
    policy: VulnerabilityPolicy, findings: Iterable[FindingOut], now: datetime
) -> tuple[tuple[FindingRow, ...], tuple[str, ...]]:
    """The findings worst first, each a danger when the policy blocks it (allowlist and
    ``only_fixable`` included), and the blocked ids."""
    listed = sorted(findings, key=lambda f: (-rank(f.severity), f.id, f.package, f.installed))
    found = [
        Found(f.id, f.package, f.installed, f.fixed_in, str(f.severity), tuple(f.aliases))
        for f in listed
    ]
    blocked = set(blocking(policy, found, now))
    rows = tuple(
        FindingRow(
            f.osv_id,
            f.package,
            f.installed,
            f.fixed_in,
            f.severity,
            f.aliases,
            Tone.DANGER if f in blocked else Tone.MUTED,
        )
        for f in found
    )
    ids = tuple(sorted({r.id for r in rows if r.tone == Tone.DANGER}))
    return rows, ids


def vulnerability_view(
    stored: Mapping[str, Any] | None,
    policy: VulnerabilityPolicy,
    findings: Sequence[FindingOut],
    *,
    now: datetime,
) -> VulnView:
    """The card's part from the evidence's ``vulnerabilities`` object (None: not matched yet)."""
    if stored is None:
        return VulnView("none", "not matched yet", Tone.MUTED)
    try:
        evidence = VulnerabilityEvidence.model_validate(stored)
    except ValidationError:
        return VulnView("invalid", "the stored evidence cannot be read", Tone.WARNING)
    rows, blocked = finding_rows(policy, findings, now)
    counts = tuple(
        SeverityCount(
            str(s),
            n,
            Tone.OK if n == 0 else Tone.DANGER if blocks(policy, s) else Tone.MUTED,
        )
        for s in SEVERITIES
        for n in [int(getattr(evidence.counts, s.value))]
    )
    total = sum(c.count for c in counts)
    status = ScanStatus(evidence.status)
    if status != ScanStatus.SCANNED:
        label, tone = STATUS_LABELS.get(status, str(status)), Tone.MUTED
    else:
        label = f"{total} finding{'s' if total != 1 else ''}" if total else "no findings"
        tone = Tone.DANGER if blocked else Tone.MUTED if total else Tone.OK
    previous = evidence.previous or {}
    return VulnView(
        status=str(status),
        label=label,
        tone=tone,
        counts=counts,
        fixable=evidence.fixable,
        osv_data=evidence.osv_data,
        new=tuple(evidence.new),
        fixed=tuple(evidence.fixed),
        previous_tag=previous.get("tag") or None,
        previous_digest=previous.get("digest") or None,
        packages=package_changes(evidence.packages),
        findings=rows,
        blocked=blocked,
    )
