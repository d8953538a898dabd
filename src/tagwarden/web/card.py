"""The approval card: a request's evidence and metadata as a reviewer reads them (pure).

Colours follow the image's policy: a check that fails an ``enforce`` policy is a danger, a
``warn`` policy's a warning, and with the policy off it is shown, muted, for information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tagwarden.evidence.listing import Policies
from tagwarden.evidence.policy import signature_failure
from tagwarden.evidence.schemas import EvidenceOut, PolicyMode, SignatureStatus
from tagwarden.evidence.sizes import grown, size_failures

UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


class Tone(StrEnum):
    OK = "ok"
    DANGER = "danger"
    WARNING = "warning"
    MUTED = "muted"


MODE_TONES = {PolicyMode.ENFORCE: Tone.DANGER, PolicyMode.WARN: Tone.WARNING}


def human_bytes(value: object) -> str:
    """Binary units, as registries and ``docker images`` count: ``30.0 MiB``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "—"
    size = float(value)
    if abs(size) < 1024:
        return f"{int(size)} B"
    for unit in UNITS:
        size /= 1024
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns at its last unit


def signed_percent(value: float) -> str:
    return f"+{value:.1f} %" if value > 0 else f"{value:.1f} %"


@dataclass(frozen=True, slots=True)
class SignatureView:
    label: str
    tone: Tone
    status: str | None = None
    signers: tuple[str, ...] = ()
    reason: str | None = None
    failure: str | None = None
    signed_digest: str | None = None
    signed: str | None = None
    checked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlatformSize:
    architecture: str
    size: str
    growth: str | None
    new_bytes: str | None
    over: bool


@dataclass(frozen=True, slots=True)
class SizeView:
    platforms: tuple[PlatformSize, ...]
    previous_tag: str | None
    previous_digest: str | None
    failures: tuple[str, ...]
    tone: Tone


@dataclass(frozen=True, slots=True)
class Card:
    signature: SignatureView
    size: SizeView | None
    also_tagged: tuple[str, ...]
    # A re-push: the tag's digest changed; the old digest and the platforms that changed.
    repushed: bool
    old_digest: str | None
    changed_platforms: tuple[str, ...]


def signature_view(evidence: EvidenceOut, policies: Policies) -> SignatureView:
    found = evidence.signature
    if found is None:
        return SignatureView("not collected yet", Tone.MUTED)
    failure = signature_failure(policies.signature, found)
    fails = MODE_TONES.get(policies.signature.mode, Tone.MUTED)
    if found.status == SignatureStatus.VERIFIED:
        label = "signed by " + ", ".join(found.signers) if found.signers else "verified"
        tone = fails if failure else Tone.OK
    elif found.status == SignatureStatus.UNSIGNED:
        label, tone = "unsigned", fails
    else:
        label = f"{found.status}: {found.reason}" if found.reason else str(found.status)
        tone = fails
    return SignatureView(
        label,
        tone,
        status=str(found.status),
        signers=tuple(found.signers),
        reason=found.reason,
        failure=failure,
        signed_digest=found.signed_digest,
        signed=str(found.signed) if found.signed else None,
        checked_at=found.checked_at,
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def size_view(evidence: EvidenceOut, policies: Policies) -> SizeView | None:
    size = evidence.size
    if size is None:
        return None
    platforms, growth, new = (_dict(size, k) for k in ("platforms", "growth_percent", "new_bytes"))
    policy = policies.size
    limit = policy.max_growth_percent if policy.mode != PolicyMode.OFF else None
    too_big = grown(size, limit) if limit is not None else {}
    rows = []
    for arch, value in sorted(platforms.items()):
        pct = _number(growth.get(arch))
        added = _number(new.get(arch))
        over = arch in too_big or (
            policy.mode != PolicyMode.OFF
            and policy.max_bytes is not None
            and isinstance(value, int)
            and value > policy.max_bytes
        )
        rows.append(
            PlatformSize(
                arch,
                human_bytes(value),
                signed_percent(pct) if pct is not None else None,
                human_bytes(added) if added is not None else None,
                over,
            )
        )
    previous = _dict(size, "previous")
    failures = tuple(size_failures(size, policy))
    return SizeView(
        tuple(rows),
        _text(previous.get("tag")) if previous else None,
        _text(previous.get("digest")) if previous else None,
        failures,
        MODE_TONES.get(policy.mode, Tone.MUTED) if failures else Tone.OK,
    )


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _names(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def card(metadata: dict[str, Any], evidence: EvidenceOut, policies: Policies) -> Card:
    return Card(
        signature=signature_view(evidence, policies),
        size=size_view(evidence, policies),
        also_tagged=_names(metadata.get("also_tagged")),
        repushed=metadata.get("reason") == "digest_changed",
        old_digest=_text(metadata.get("old_digest")),
        changed_platforms=_names(metadata.get("changed_platforms")),
    )
