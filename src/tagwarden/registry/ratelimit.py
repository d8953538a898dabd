"""Per-host rate-limit state shared by every client that talks to that host.

Two budgets are tracked because registries report two different things:

* a *request* budget (Hub API ``X-RateLimit-Remaining: 175``, reset at ``X-RateLimit-Reset``,
  a unix time): every request spends it;
* a *pull* budget (registry ``ratelimit-remaining: 76;w=21600``): only manifest GETs spend it,
  HEADs do not, so running low on pulls must not slow down the HEAD-based discovery.

The ``;w=`` window parameter is what tells them apart (a capture from registry-1 shows it on the
``x-`` names too).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from tagwarden.clock import Clock
from tagwarden.registry.base import RateLimited

# Below this share of the limit we start spacing requests out over the time left.
LOW_BUDGET_FRACTION = 0.1
# When the limit itself is unknown, "low" means this many requests left.
LOW_BUDGET_FLOOR = 5
# A bare integer at or above this is a unix time (Hub's X-RateLimit-Reset); below it, seconds
# from now (the IETF RateLimit-Reset draft). No real delay is 30 years long.
_UNIX_TIME_THRESHOLD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BudgetReading:
    remaining: int
    limit: int | None
    window: float | None
    reset_at: float | None
    pulls_only: bool


def _header(headers: httpx.Headers, name: str) -> str | None:
    # Names are case-insensitive in httpx; registries send both with and without "x-".
    value: str | None = headers.get(name) or headers.get(f"x-{name}")
    return value


def _quota(value: str) -> tuple[int, float | None] | None:
    """``"76;w=21600"`` → (76, 21600.0); ``"175"`` → (175, None); junk → None."""
    head, *params = (part.strip() for part in value.split(";"))
    try:
        amount = int(head)
    except ValueError:
        return None
    window = None
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "w":
            try:
                window = float(raw)
            except ValueError:
                window = None
    return amount, window


def parse_budget(headers: httpx.Headers, now: float) -> BudgetReading | None:
    raw_remaining = _header(headers, "ratelimit-remaining")
    if raw_remaining is None:
        return None
    remaining = _quota(raw_remaining)
    if remaining is None:
        return None
    raw_limit = _header(headers, "ratelimit-limit")
    limit = _quota(raw_limit) if raw_limit else None
    window = remaining[1] if remaining[1] is not None else (limit[1] if limit else None)
    reset_at = None
    raw_reset = _header(headers, "ratelimit-reset")
    if raw_reset:
        try:
            reset = float(raw_reset.split(";")[0])
        except ValueError:
            reset = None
        if reset is not None:
            reset_at = reset if reset >= _UNIX_TIME_THRESHOLD else now + reset
    return BudgetReading(
        remaining=max(0, remaining[0]),
        limit=limit[0] if limit else None,
        window=window,
        reset_at=reset_at,
        pulls_only=window is not None,
    )


def parse_retry_at(headers: httpx.Headers, now: float) -> float | None:
    """When a 429 says requests may resume, as a unix time, or None if it does not say."""
    x_retry = headers.get("x-retry-after")
    if x_retry:  # Hub API: a unix timestamp, not a delay
        try:
            return float(x_retry)
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if not retry_after:
        return None
    try:
        return now + max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def full_jitter(attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 30.0) -> float:
    """AWS "full jitter": uniform in [0, min(cap, base·2^attempt)], so retrying clients spread."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


@dataclass
class _Budget:
    remaining: int | None = None
    limit: int | None = None
    reset_at: float | None = None
    window: float | None = None
    observed_at: float = 0.0
    next_slot: float = 0.0

    def low_mark(self) -> int:
        if self.limit:
            return max(1, math.ceil(self.limit * LOW_BUDGET_FRACTION))
        return LOW_BUDGET_FLOOR


@dataclass
class HostLimiter:
    """What one host told us about its limits, and when we may next send to it."""

    host: str
    clock: Clock
    max_wait: float
    blocked_until: float = 0.0
    requests: _Budget = field(default_factory=_Budget)
    pulls: _Budget = field(default_factory=_Budget)

    def remaining(self, *, pulls: bool = False) -> int | None:
        budget = self.pulls if pulls else self.requests
        self._expire(budget, self.clock.now())
        return budget.remaining

    async def acquire(self, *, is_pull: bool) -> None:
        """Wait until a request may go out; raise RateLimited if that is too far off."""
        while True:
            now = self.clock.now()
            if self.blocked_until > now:
                self._check_wait(self.blocked_until, now)
                await self.clock.sleep(self.blocked_until - now)
                continue
            slot = self._reserve(self.requests, now)
            if is_pull:
                slot = max(slot, self._reserve(self.pulls, now))
            if slot > now:
                await self.clock.sleep(slot - now)
            return

    def observe(self, headers: httpx.Headers) -> None:
        now = self.clock.now()
        reading = parse_budget(headers, now)
        if reading is None:
            return
        budget = self.pulls if reading.pulls_only else self.requests
        budget.remaining = reading.remaining
        budget.limit = reading.limit if reading.limit is not None else budget.limit
        budget.window = reading.window
        budget.reset_at = reading.reset_at
        budget.observed_at = now

    def block_until(self, when: float) -> None:
        self.blocked_until = max(self.blocked_until, when)

    def _check_wait(self, until: float, now: float) -> None:
        if until - now > self.max_wait:
            raise RateLimited(
                f"{self.host} asked to wait {until - now:.0f}s (limit {self.max_wait:.0f}s)",
                retry_at=datetime.fromtimestamp(until, UTC),
            )

    def _expire(self, budget: _Budget, now: float) -> None:
        refill = budget.reset_at
        if refill is None and budget.window is not None:
            refill = budget.observed_at + budget.window  # a sliding window: surely refilled by then
        if budget.remaining is not None and refill is not None and refill <= now:
            # The window has rolled over; what we knew is stale until the next response.
            budget.remaining, budget.reset_at, budget.next_slot = None, None, 0.0

    def _reserve(self, budget: _Budget, now: float) -> float:
        """Claim the earliest time this budget allows a request; ``now`` if it is not low."""
        self._expire(budget, now)
        if budget.remaining is None:
            return now
        if budget.remaining <= 0:
            # Spent. A sliding window (pulls: "100;w=21600") names no reset, so the worst case,
            # a full window after the last reading, is the only safe guess.
            until = budget.reset_at
            if until is None and budget.window is not None:
                until = budget.observed_at + budget.window
            if until is None:
                return now  # nothing says when it refills: let the server decide
            self._check_wait(until, now)
            return until
        if budget.remaining > budget.low_mark() or budget.reset_at is None:
            budget.remaining -= 1  # concurrent callers must not all see the same figure
            return now
        # Nearly spent: spread what is left evenly over the time until the reset.
        slot = max(now, budget.next_slot)
        self._check_wait(slot, now)
        interval = max(0.0, budget.reset_at - slot) / budget.remaining
        budget.next_slot = slot + interval
        budget.remaining -= 1
        return slot


class RateLimits:
    """Every host's limiter, shared by all clients so a budget is known across scans."""

    def __init__(self, clock: Clock, *, max_wait: float = 120.0) -> None:
        self.clock = clock
        self.max_wait = max_wait
        self._hosts: dict[str, HostLimiter] = {}

    def for_host(self, host: str) -> HostLimiter:
        limiter = self._hosts.get(host)
        if limiter is None:
            limiter = HostLimiter(host=host, clock=self.clock, max_wait=self.max_wait)
            self._hosts[host] = limiter
        return limiter

    def hosts(self) -> dict[str, HostLimiter]:
        return dict(self._hosts)
