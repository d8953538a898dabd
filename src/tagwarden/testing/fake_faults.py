"""What tests can break in the fake registry at run time, and what it counts."""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

RetryStyle = Literal["x-retry-after", "retry-after", "http-date", "none"]


def kind_matches(kind: str, wanted: str | None) -> bool:
    """``None`` matches everything; ``"hub"``/``"oci"`` a whole API; else one kind exactly.

    Kinds: hub_tags, hub_tag, hub_login, oci_base, oci_tags, oci_manifest, oci_blob, oci_token.
    """
    return wanted is None or kind == wanted or kind.startswith(wanted + "_")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # the fake clock's time when the request arrived
    method: str
    path: str
    query: str
    kind: str
    repository: str | None
    status: int
    username: str | None  # None: anonymous


class RequestStats:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)

    def matching(
        self,
        kind: str | None = None,
        method: str | None = None,
        *,
        repository: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        return [
            r
            for r in self.records
            if kind_matches(r.kind, kind)
            and (method is None or r.method == method.upper())
            and (repository is None or r.repository == repository)
            and (status is None or r.status == status)
        ]

    def count(
        self,
        kind: str | None = None,
        method: str | None = None,
        *,
        repository: str | None = None,
        status: int | None = None,
    ) -> int:
        return len(self.matching(kind, method, repository=repository, status=status))

    def by_kind(self) -> Counter[tuple[str, str]]:
        """(kind, method) → number of requests."""
        return Counter((r.kind, r.method) for r in self.records)

    def reset(self) -> None:
        self.records.clear()


@dataclass
class _Burst:
    remaining: int
    status: int
    kind: str | None


@dataclass
class _Throttle:
    wait: float
    kind: str | None
    style: RetryStyle | None
    until: float | None = None  # set by the first request it refuses


@dataclass
class Faults:
    """Set any of these from a test while the fake is serving; ``reset()`` clears them all."""

    latency_ms: int = 0
    missing: set[str] = field(default_factory=set)
    _bursts: list[_Burst] = field(default_factory=list)
    _malformed: list[tuple[str, str | None]] = field(default_factory=list)
    _throttles: list[_Throttle] = field(default_factory=list)

    def fail_next(self, count: int, *, status: int = 503, kind: str | None = None) -> None:
        """The next ``count`` matching requests answer ``status`` (a 5xx burst)."""
        self._bursts.append(_Burst(count, status, kind))

    def malform(self, path_pattern: str, *, kind: str | None = None) -> None:
        """Successful JSON answers for paths matching the glob get a truncated body."""
        self._malformed.append((path_pattern, kind))

    def force_429(
        self, wait_seconds: float, *, kind: str | None = None, style: RetryStyle | None = None
    ) -> None:
        """The next matching request, and every one after it until ``wait_seconds`` have
        passed, gets 429. Style defaults to the API's own: ``X-Retry-After`` (a unix time) on
        the Hub API, ``Retry-After`` (seconds) on the registry API."""
        self._throttles.append(_Throttle(wait_seconds, kind, style))

    def not_found(self, repository: str) -> None:
        self.missing.add(repository.strip("/"))

    def reset(self) -> None:
        self.latency_ms = 0
        self.missing.clear()
        self._bursts.clear()
        self._malformed.clear()
        self._throttles.clear()

    # -- used by the server ------------------------------------------------------------------

    def take_burst(self, kind: str) -> int | None:
        for burst in self._bursts:
            if burst.remaining > 0 and kind_matches(kind, burst.kind):
                burst.remaining -= 1
                return burst.status
        return None

    def is_malformed(self, path: str, kind: str) -> bool:
        return any(
            fnmatch.fnmatchcase(path, pattern) and kind_matches(kind, wanted)
            for pattern, wanted in self._malformed
        )

    def throttle(self, kind: str, now: float) -> tuple[float, RetryStyle | None] | None:
        """(until, style) if this request must be refused with 429."""
        for throttle in list(self._throttles):
            if not kind_matches(kind, throttle.kind):
                continue
            if throttle.until is None:
                throttle.until = now + throttle.wait
            if now < throttle.until:
                return throttle.until, throttle.style
            self._throttles.remove(throttle)
        return None
