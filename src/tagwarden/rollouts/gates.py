"""Health gates (pure): what one device's latest report means for its place in a rollout.

Success means healthy, not installed: ``running``, ``healthy`` and the target digest, held for
``bake_seconds``. A device that neither succeeds nor fails by its deadline fails with ``timeout``
(or ``unhealthy`` when it runs the target but reports itself unhealthy), so no rollout can hang
on a silent device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tagwarden.devices.states import AppHealth, AppStatus, FailureReason
from tagwarden.rollouts.states import DeviceState


@dataclass(frozen=True)
class Report:
    status: AppStatus | None
    health: AppHealth | None
    digest: str | None
    reason: str | None
    reported_at: datetime | None


@dataclass(frozen=True)
class Verdict:
    state: DeviceState  # scheduled, updating, succeeded or failed
    healthy_since: datetime | None = None
    failure_reason: FailureReason | None = None


def assess(
    *,
    state: DeviceState,
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
    if fresh and report.status == AppStatus.FAILED:
        return Verdict(DeviceState.FAILED, failure_reason=FailureReason.of(report.reason))
    good = (
        fresh
        and report.status == AppStatus.RUNNING
        and report.health == AppHealth.HEALTHY
        and report.digest in accepted_digests
    )
    if good:
        since = healthy_since or now
        if (now - since).total_seconds() >= bake_seconds:
            return Verdict(DeviceState.SUCCEEDED, healthy_since=since)
        return Verdict(DeviceState.UPDATING, healthy_since=since)
    if now >= deadline_at:
        unhealthy = (
            fresh
            and report.status == AppStatus.RUNNING
            and report.health == AppHealth.UNHEALTHY
            and report.digest in accepted_digests
        )
        reason = FailureReason.UNHEALTHY if unhealthy else FailureReason.TIMEOUT
        return Verdict(DeviceState.FAILED, failure_reason=reason)
    return Verdict(DeviceState.UPDATING if fresh else state)


def switch_deadline(
    *, told_at: datetime, window_opened_at: datetime | None, health_timeout: int
) -> datetime:
    """When a device that was told to switch at ``told_at`` fails with ``timeout``.

    A device that waited for a maintenance window has ``health_timeout`` from the window's
    opening, so the window's work ends at a time known in advance. Never a deadline the device
    could not meet at all: a release later than that (a monitor that was away for the whole
    timeout) counts from the release.
    """
    timeout = timedelta(seconds=health_timeout)
    if window_opened_at is not None and window_opened_at + timeout > told_at:
        return window_opened_at + timeout
    return told_at + timeout
