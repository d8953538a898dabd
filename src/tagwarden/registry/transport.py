"""One HTTP request to a registry, with the waiting, retrying and error mapping all clients need."""

from __future__ import annotations

import logging
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tagwarden.clock import Clock, SystemClock
from tagwarden.registry.allowlist import hop_refusal, origin
from tagwarden.registry.auth import TokenCache
from tagwarden.registry.base import (
    ImageNotFound,
    MalformedResponse,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
)
from tagwarden.registry.ratelimit import RateLimits, full_jitter, parse_retry_at
from tagwarden.remote import reason

log = logging.getLogger(__name__)

# 501 and 505 say the server will never do this, so retrying cannot help.
_NOT_TRANSIENT_5XX = {501, 505}
_REDIRECTS = {301, 302, 303, 307, 308}
# Blob CDNs redirect once or twice; more is a loop or someone walking us somewhere.
MAX_REDIRECTS = 5


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


def shown_url(url: str | httpx.URL) -> str:
    """A URL as an error message names it: no query (paging cursors, tokens), cut short."""
    parts = urlsplit(str(url))
    # host[:port] only: a configured URL may carry user:password@, which must not be shown.
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:  # not a port: leave it out rather than fail while reporting a failure
        port = None
    netloc = f"{host}:{port}" if port else host
    text = f"{parts.scheme}://{netloc}{parts.path}"
    return text if len(text) <= 160 else text[:160] + "…"


def json_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"invalid JSON from {shown_url(response.request.url)}",
            url=str(response.request.url),
            status=response.status_code,
        ) from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_body(response)
    if not isinstance(body, dict):
        raise MalformedResponse(
            f"expected a JSON object from {shown_url(response.request.url)}",
            url=str(response.request.url),
        )
    return body


class Transport:
    """Sends requests through the host's limiter and retries what is worth retrying.

    Returns any response that is not 404, 429 or a transient 5xx; the caller decides what a
    401 or 403 means, since only it knows how to authenticate.

    Redirects are followed here, not by httpx, so that every hop is checked
    (:func:`~tagwarden.registry.allowlist.hop_refusal`): ``trusted`` are the ``host[:port]``
    an operator configured, the only internal addresses a redirect may lead to.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        state: RegistryState,
        *,
        max_retries: int,
        timeout: float,
        trusted: Collection[str] = frozenset(),
    ) -> None:
        self.http = http
        self.state = state
        self.max_retries = max_retries
        self.timeout = timeout
        self.trusted = frozenset(trusted)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_payload: Any = None,
        params: dict[str, str] | None = None,
        is_pull: bool = False,
        form: dict[str, str] | None = None,
    ) -> httpx.Response:
        limiter = self.state.limits.for_host(host_of(url))
        clock = self.state.clock
        shown = f"{method} {shown_url(url)}"
        attempt = 0
        while True:
            await limiter.acquire(is_pull=is_pull)
            try:
                response = await self._follow(
                    method, url, headers=headers, json_payload=json_payload, params=params,
                    form=form,
                )  # fmt: skip
            except httpx.TransportError as exc:  # timeouts, refused, reset, protocol errors
                if attempt >= self.max_retries:
                    raise RegistryUnavailable(
                        f"{shown} failed after {attempt + 1} attempts: {type(exc).__name__}",
                        url=url,
                    ) from exc
                await self._back_off(attempt, shown, type(exc).__name__)
                attempt += 1
                continue
            limiter.observe(response.headers)
            status = response.status_code
            if status == 429:
                retry_at = parse_retry_at(response.headers, clock.now())
                if attempt >= self.max_retries:
                    when = retry_at if retry_at is not None else clock.now()
                    raise RateLimited(
                        f"{shown}: 429 after {attempt + 1} attempts",
                        retry_at=datetime.fromtimestamp(when, UTC),
                        url=url,
                    )
                attempt += 1
                if retry_at is not None:
                    # The whole host waits, not just this request: the limit is per client.
                    limiter.block_until(retry_at)
                    log.info("%s: 429, waiting until %.0f", shown, retry_at)
                else:
                    await self._back_off(attempt - 1, shown, "429 without Retry-After")
                continue
            if status >= 500 and status not in _NOT_TRANSIENT_5XX:
                if attempt >= self.max_retries:
                    raise RegistryUnavailable(
                        f"{shown}: {reason(status)} after {attempt + 1} attempts",
                        url=url,
                        status=status,
                    )
                await self._back_off(attempt, shown, str(status))
                attempt += 1
                continue
            if status == 404:
                raise ImageNotFound(f"{shown}: {reason(404)}", url=url, status=404)
            return response

    async def _follow(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        json_payload: Any,
        params: dict[str, str] | None,
        form: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request and the redirects it leads to, each hop checked before it is sent.

        Blobs are often served from a CDN redirect, so redirects are followed; but a hop that
        :func:`hop_refusal` refuses, or one too many, is a registry error, and the refused
        target gets no request. The Authorization header never leaves the host it was meant
        for: credentials and tokens stay with their host.
        """
        current = httpx.URL(url)
        sent_headers = dict(headers or {})
        for hop in range(MAX_REDIRECTS + 1):
            response = await self.http.request(
                method,
                current,
                headers=sent_headers,
                json=json_payload,
                data=form if hop == 0 else None,
                params=params if hop == 0 else None,
                timeout=self.timeout,
                follow_redirects=False,
            )
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            await response.aclose()
            source = response.request.url
            try:
                target = source.join(location)
            except httpx.InvalidURL as exc:
                raise RegistryError(
                    f"{method} {shown_url(url)}: {reason(response.status_code)}, "
                    "redirect to an unreadable URL",
                    url=url,
                    status=response.status_code,
                ) from exc
            refused = hop_refusal(str(source), str(target), self.trusted)
            if refused is not None:
                log.warning("%s %s: redirect not followed (%s)", method, shown_url(url), refused)
                raise RegistryError(
                    f"{method} {shown_url(url)}: {reason(response.status_code)}, "
                    f"redirect not followed ({refused})",
                    url=url,
                    status=response.status_code,
                )
            if origin(str(target)) != origin(str(source)):
                sent_headers.pop("Authorization", None)
                sent_headers.pop("authorization", None)
            if (response.status_code == 303 and method != "HEAD") or (
                response.status_code in (301, 302) and method == "POST"
            ):
                # What browsers and httpx do: the body is not sent again.
                method, json_payload = "GET", None
            current = target
        raise RegistryError(
            f"{method} {shown_url(url)}: more than {MAX_REDIRECTS} redirects", url=url
        )

    async def _back_off(self, attempt: int, shown: str, why: str) -> None:
        delay = full_jitter(attempt, self.state.rng)
        log.info("%s: %s, retry %d in %.2fs", shown, why, attempt + 1, delay)
        await self.state.clock.sleep(delay)


def unexpected(response: httpx.Response) -> RegistryError:
    """The error for a status the caller had no plan for: the status and its standard phrase,
    never the body."""
    return RegistryError(
        f"{response.request.method} {shown_url(response.request.url)}: "
        f"{reason(response.status_code)}",
        url=str(response.request.url),
        status=response.status_code,
    )
