"""One HTTP request to a registry, with the waiting, retrying and error mapping all clients need."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tagwarden.registry.auth import TokenCache
from tagwarden.registry.base import (
    ImageNotFound,
    MalformedResponse,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
)
from tagwarden.registry.clock import Clock, SystemClock
from tagwarden.registry.ratelimit import RateLimits, full_jitter, parse_retry_at

log = logging.getLogger(__name__)

# 501 and 505 say the server will never do this, so retrying cannot help.
_NOT_TRANSIENT_5XX = {501, 505}


@dataclass
class RegistryState:
    """What outlives one client: the clock, every host's limits and every token."""

    clock: Clock = field(default_factory=SystemClock)
    max_wait_seconds: float = 120.0
    # Backoff jitter only spreads retries; it is not security-relevant randomness.
    rng: random.Random = field(default_factory=random.Random)
    limits: RateLimits = field(init=False)
    tokens: TokenCache = field(default_factory=TokenCache)

    def __post_init__(self) -> None:
        self.limits = RateLimits(self.clock, max_wait=self.max_wait_seconds)


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


def excerpt(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def json_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"invalid JSON from {response.request.url}: {excerpt(response, 80)!r}",
            url=str(response.request.url),
            status=response.status_code,
        ) from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_body(response)
    if not isinstance(body, dict):
        raise MalformedResponse(
            f"expected a JSON object from {response.request.url}", url=str(response.request.url)
        )
    return body


class Transport:
    """Sends requests through the host's limiter and retries what is worth retrying.

    Returns any response that is not 404, 429 or a transient 5xx; the caller decides what a
    401 or 403 means, since only it knows how to authenticate.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        state: RegistryState,
        *,
        max_retries: int,
        timeout: float,
    ) -> None:
        self.http = http
        self.state = state
        self.max_retries = max_retries
        self.timeout = timeout

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_payload: Any = None,
        params: dict[str, str] | None = None,
        is_pull: bool = False,
    ) -> httpx.Response:
        limiter = self.state.limits.for_host(host_of(url))
        clock = self.state.clock
        attempt = 0
        while True:
            await limiter.acquire(is_pull=is_pull)
            try:
                response = await self.http.request(
                    method,
                    url,
                    headers=headers,
                    json=json_payload,
                    params=params,
                    timeout=self.timeout,
                    follow_redirects=True,  # blobs are often served from a CDN redirect
                )
            except httpx.TransportError as exc:  # timeouts, refused, reset, protocol errors
                if attempt >= self.max_retries:
                    raise RegistryUnavailable(
                        f"{method} {url} failed after {attempt + 1} attempts: {exc!r}", url=url
                    ) from exc
                await self._back_off(attempt, method, url, repr(exc))
                attempt += 1
                continue
            limiter.observe(response.headers)
            status = response.status_code
            if status == 429:
                retry_at = parse_retry_at(response.headers, clock.now())
                if attempt >= self.max_retries:
                    when = retry_at if retry_at is not None else clock.now()
                    raise RateLimited(
                        f"{method} {url}: 429 after {attempt + 1} attempts",
                        retry_at=datetime.fromtimestamp(when, UTC),
                        url=url,
                    )
                attempt += 1
                if retry_at is not None:
                    # The whole host waits, not just this request: the limit is per client.
                    limiter.block_until(retry_at)
                    log.info("%s %s: 429, waiting until %.0f", method, url, retry_at)
                else:
                    await self._back_off(attempt - 1, method, url, "429 without Retry-After")
                continue
            if status >= 500 and status not in _NOT_TRANSIENT_5XX:
                if attempt >= self.max_retries:
                    raise RegistryUnavailable(
                        f"{method} {url}: {status} after {attempt + 1} attempts",
                        url=url,
                        status=status,
                    )
                await self._back_off(attempt, method, url, str(status))
                attempt += 1
                continue
            if status == 404:
                raise ImageNotFound(f"{method} {url}: 404 {excerpt(response)}", url=url, status=404)
            return response

    async def _back_off(self, attempt: int, method: str, url: str, why: str) -> None:
        delay = full_jitter(attempt, self.state.rng)
        log.info("%s %s: %s, retry %d in %.2fs", method, url, why, attempt + 1, delay)
        await self.state.clock.sleep(delay)


def unexpected(response: httpx.Response) -> RegistryError:
    """The error for a status the caller had no plan for."""
    return RegistryError(
        f"{response.request.method} {response.request.url}: "
        f"{response.status_code} {excerpt(response)}",
        url=str(response.request.url),
        status=response.status_code,
    )
