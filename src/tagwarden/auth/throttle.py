"""Failed credential checks per client address: past the limit, 429 with Retry-After.

Failed web sign-ins, API bearer tokens and device keys all count, in one sliding minute per
address (an attacker switching between them gets no more guesses). Only a check that would fail
is refused: the credential is checked first, and a valid one is never slowed or refused, so a
device or a person behind the same address as an attacker keeps working.

The counts live in memory, per process (per replica): N replicas behind a balancer allow up to
N times the limit. Memory is bounded: at most ``max_addresses`` addresses are tracked (the one
tried least recently is forgotten first), each with at most ``limit`` timestamps.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import Request

from tagwarden.errors import DomainError, Unauthorized

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000
_STATE = "auth_throttle"


class FailureWindow:
    """The pure core: a sliding window of failures per address, with an injected clock."""

    def __init__(
        self,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def fail(self, address: str) -> float | None:
        """Note a failed check from ``address``.

        None when it is within the limit (and counted); otherwise the seconds until its oldest
        failure leaves the window, and nothing is counted (a refused attempt learns nothing, so
        it does not push the window further out).
        """
        now = self.clock()
        failures = self._failures.get(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self.limit)
        # Most recently tried last, refused attempts included: an address still hammering away
        # is the last to be forgotten when the table is full.
        self._failures.move_to_end(address)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.limit:
            return max(0.0, failures[0] + self.window - now)
        failures.append(now)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return None


class TooManyFailures(DomainError):
    status_code = 429
    code = "too_many_failures"

    def __init__(self, retry_after: float) -> None:
        # Whole seconds, rounded up: retrying after Retry-After must not be refused again.
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            "too many failed sign-ins or credential checks from your address; "
            f"retry in {self.retry_after} s"
        )

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}


def _window(request: Request) -> FailureWindow:
    state = request.app.state
    window: FailureWindow | None = getattr(state, _STATE, None)
    if window is None:
        window = FailureWindow(state.settings.auth_failures_per_minute)
        setattr(state, _STATE, window)
    return window


def client_address(request: Request) -> str:
    # Behind a reverse proxy this is the proxy's address unless uvicorn trusts its forwarded
    # headers (`tagwarden serve` runs with proxy_headers=True; see FORWARDED_ALLOW_IPS).
    return request.client.host if request.client else "unknown"


def failed(request: Request) -> None:
    """Count a failed check from the caller; raise TooManyFailures past the limit."""
    wait = _window(request).fail(client_address(request))
    if wait is not None:
        raise TooManyFailures(wait)


@contextmanager
def counting_failures(request: Request) -> Iterator[None]:
    """Count the block's Unauthorized (a wrong credential) as a failed check of the caller."""
    try:
        yield
    except Unauthorized:
        failed(request)
        raise
