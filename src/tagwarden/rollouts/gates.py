"""Health gates (pure): what one device's latest report means for its place in a rollout.

Success means healthy, not installed: ``running``, ``healthy`` and the target digest, held for
``bake_seconds``. A device that neither succeeds nor fails by its deadline fails with ``timeout``
(or ``unhealthy`` when it runs the target but reports itself unhealthy), so no rollout can hang
on a silent device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tagwarden.rollouts.models import FAILURE_REASONS


@dataclass(frozen=True)
class Report:
    status: str | None
    health: str | None
    digest: str | None
    reason: str | None
    reported_at: datetime | None


@dataclass(frozen=True)
class Verdict:
    state: str  # scheduled, updating, succeeded or failed
    healthy_since: datetime | None = None
    failure_reason: str | None = None


def assess(
    *,
    state: str,
    report: Report,
    accepted_digests: frozenset[str],
    scheduled_at: datetime,
    deadline_at: datetime,
    healthy_since: datetime | None,
    bake_seconds: int,
    now: datetime,
) -> Verdict:
    # A report older than the new target speaks about the previous image.
    fresh = report.reported_at is not None and report.reported_at >= scheduled_at
    if fresh and report.status == "failed":
        reason = report.reason if report.reason in FAILURE_REASONS else "other"
        return Verdict("failed", failure_reason=reason)
    good = (
        fresh
        and report.status == "running"
        and report.health == "healthy"
        and report.digest in accepted_digests
    )
    if good:
        since = healthy_since or now
        if (now - since).total_seconds() >= bake_seconds:
            return Verdict("succeeded", healthy_since=since)
        return Verdict("updating", healthy_since=since)
    if now >= deadline_at:
        unhealthy = (
            fresh
            and report.status == "running"
            and report.health == "unhealthy"
            and report.digest in accepted_digests
        )
        return Verdict("failed", failure_reason="unhealthy" if unhealthy else "timeout")
    return Verdict("updating" if fresh else state)
