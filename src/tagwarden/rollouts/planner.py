"""The rollout planner (pure, no I/O): which devices, in which batches, and who is skipped why.

The real rollout and the dry run both call :func:`plan`, so a dry run matches what the rollout
then does by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tagwarden.devices.states import AppStatus
from tagwarden.platforms import normalise_architecture
from tagwarden.rollouts.windows import Window

STRATEGIES = ("all-at-once", "canary", "batched")
ON_FAILURE = ("pause", "rollback")
OFFLINE_MODES = ("skip", "wait")
SKIP_REASONS = ("architecture_not_provided", "already_on_target", "offline")
# The seeds: a device silent for more than three poll intervals is offline.
OFFLINE_AFTER_POLL_INTERVALS = 3
DEFAULT_BATCH_SIZE = 10


@dataclass(frozen=True)
class Ramp:
    """An exponential rate: ``start_per_minute``, times ``factor`` each time
    ``every_succeeded`` more devices have succeeded."""

    start_per_minute: int
    factor: float
    every_succeeded: int


@dataclass(frozen=True)
class Abort:
    """Stop once at least ``min_devices`` have finished and more than ``failure_percent`` of
    them failed."""

    failure_percent: float
    min_devices: int


@dataclass(frozen=True)
class Options:
    """How a rollout proceeds; every field has a default that works for a small fleet."""

    canary_percent: float | None = None
    canary_count: int | None = None
    batch_size: int | None = None
    bake_seconds: int = 30
    health_timeout: int = 600
    max_failures: int | str = 0  # a count, or a percentage of the targeted devices: "10%"
    on_failure: str = "pause"
    # Maintenance windows: devices switch only inside one (they pre-fetch outside).
    windows: tuple[Window, ...] = ()
    max_per_minute: int | None = None
    ramp: Ramp | None = None
    abort: Abort | None = None
    continuous: bool = False
    # None: an offline device is skipped when the rollout is planned, and judged by its
    # deadline after that; "skip" also skips one offline when its batch starts; "wait" plans
    # it and holds its batch until it is back.
    offline: str | None = None

    def __post_init__(self) -> None:
        # Stored options (a rollout's JSON column) give the windows as mappings.
        object.__setattr__(self, "windows", tuple(Window.of(w) for w in self.windows or ()))

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> Options:
        """The options as a rollout stores them (JSON: the nested ones are plain objects)."""
        values = dict(stored)
        ramp, abort = values.pop("ramp", None), values.pop("abort", None)
        return cls(
            **values,
            ramp=Ramp(**ramp) if ramp else None,
            abort=Abort(**abort) if abort else None,
        )


@dataclass(frozen=True)
class Candidate:
    """A device as the planner sees it, for the rollout's app."""

    uuid: str
    architecture: str
    registered_at: datetime
    last_seen_at: datetime | None = None
    target_digest: str | None = None  # what the device is told to run now
    reported_digest: str | None = None  # what it last said it runs
    reported_status: AppStatus | None = None


@dataclass(frozen=True)
class Variant:
    """One architecture row of the tag in image_tags."""

    architecture: str
    digest: str
    platform_digest: str | None = None

    @property
    def accepted(self) -> frozenset[str]:
        """Digests a device may report for this tag: the index, or its platform's manifest."""
        return frozenset(d for d in (self.digest, self.platform_digest) if d)


@dataclass(frozen=True)
class Skip:
    uuid: str
    reason: str


@dataclass(frozen=True)
class Plan:
    batches: list[list[str]] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def targeted(self) -> list[str]:
        return [uuid for batch in self.batches for uuid in batch]


def skip_reason(
    device: Candidate,
    variants: Mapping[str, Variant],
    *,
    now: datetime,
    poll_interval_seconds: int,
    keep_offline: bool = False,
) -> str | None:
    """Why the device is left out of the rollout; None when it is targeted. ``keep_offline``:
    an offline device is targeted all the same (it is waited for)."""
    variant = variants.get(normalise_architecture(device.architecture))
    if variant is None:
        return "architecture_not_provided"
    on_target = device.target_digest in variant.accepted or (
        device.reported_status == AppStatus.RUNNING and device.reported_digest in variant.accepted
    )
    if on_target:
        return "already_on_target"
    if not keep_offline and is_offline(
        device.last_seen_at,
        device.registered_at,
        now=now,
        poll_interval_seconds=poll_interval_seconds,
    ):
        return "offline"
    return None


def is_offline(
    last_seen_at: datetime | None,
    registered_at: datetime,
    *,
    now: datetime,
    poll_interval_seconds: int,
) -> bool:
    """Silent for more than three poll intervals (a device never seen counts from its
    registration)."""
    last = last_seen_at or registered_at
    return now - last > timedelta(seconds=OFFLINE_AFTER_POLL_INTERVALS * poll_interval_seconds)


def split(strategy: str, options: Options, uuids: Sequence[str]) -> list[list[str]]:
    """Cut the targeted devices into batches, in the order given."""
    if not uuids:
        return []
    if strategy == "all-at-once":
        return [list(uuids)]
    if strategy == "batched":
        return _chunks(uuids, options.batch_size or DEFAULT_BATCH_SIZE)
    if strategy == "canary":
        if options.canary_count is not None:
            size = options.canary_count
        elif options.canary_percent is not None:
            size = math.ceil(len(uuids) * options.canary_percent / 100)
        else:
            size = 1
        size = max(1, min(size, len(uuids)))
        rest = uuids[size:]
        batches = [list(uuids[:size])]
        if rest:
            batches += _chunks(rest, options.batch_size) if options.batch_size else [list(rest)]
        return batches
    raise ValueError(f"unknown strategy {strategy!r}")


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def plan(
    strategy: str,
    options: Options,
    devices: Iterable[Candidate],
    variants: Mapping[str, Variant],
    *,
    now: datetime,
    poll_interval_seconds: int,
) -> Plan:
    targeted: list[str] = []
    skipped: list[Skip] = []
    seen: set[str] = set()
    for device in devices:
        if device.uuid in seen:
            continue
        seen.add(device.uuid)
        reason = skip_reason(
            device,
            variants,
            now=now,
            poll_interval_seconds=poll_interval_seconds,
            keep_offline=options.offline == "wait",
        )
        if reason:
            skipped.append(Skip(device.uuid, reason))
        else:
            targeted.append(device.uuid)
    return Plan(batches=split(strategy, options, targeted), skipped=skipped)


def failure_allowance(max_failures: int | str, targeted: int) -> int:
    """How many failed devices a rollout tolerates; one more crosses the threshold."""
    if isinstance(max_failures, str):
        percent = float(max_failures.strip().removesuffix("%"))
        return math.floor(targeted * percent / 100)
    return max_failures
