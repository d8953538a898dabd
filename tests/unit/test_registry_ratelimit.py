"""Rate-limit headers, 429 waits, budget pacing and backoff, on a clock that does not wait."""

from __future__ import annotations

import random
from email.utils import formatdate

import httpx
import pytest

from tagwarden.registry.auth import parse_challenges
from tagwarden.registry.base import RateLimited
from tagwarden.registry.ratelimit import (
    RateLimits,
    full_jitter,
    parse_budget,
    parse_retry_at,
)
from tagwarden.testing import FakeClock

NOW = 1_760_000_000.0


def test_x_retry_after_is_a_unix_time() -> None:
    headers = httpx.Headers({"X-Retry-After": "1760000042"})
    assert parse_retry_at(headers, NOW) == 1_760_000_042


def test_retry_after_in_seconds() -> None:
    assert parse_retry_at(httpx.Headers({"Retry-After": "30"}), NOW) == NOW + 30


def test_retry_after_as_http_date() -> None:
    headers = httpx.Headers({"Retry-After": formatdate(NOW + 90, usegmt=True)})
    assert parse_retry_at(headers, NOW) == NOW + 90


def test_retry_after_absent_or_junk() -> None:
    assert parse_retry_at(httpx.Headers(), NOW) is None
    assert parse_retry_at(httpx.Headers({"Retry-After": "soon"}), NOW) is None


def test_hub_api_budget_is_a_request_budget_with_unix_reset() -> None:
    reading = parse_budget(
        httpx.Headers(
            {
                "X-RateLimit-Limit": "180",
                "X-RateLimit-Remaining": "175",
                "X-RateLimit-Reset": "1613958012",
            }
        ),
        NOW,
    )
    assert reading is not None
    assert (reading.remaining, reading.limit, reading.reset_at) == (175, 180, 1613958012)
    assert not reading.pulls_only


@pytest.mark.parametrize("prefix", ["", "x-"])
def test_registry_pull_budget_with_window(prefix: str) -> None:
    reading = parse_budget(
        httpx.Headers(
            {
                f"{prefix}ratelimit-limit": "100;w=21600",
                f"{prefix}ratelimit-remaining": "76;w=21600",
            }
        ),
        NOW,
    )
    assert reading is not None
    assert (reading.remaining, reading.limit, reading.window) == (76, 100, 21600)
    assert reading.pulls_only


def test_small_reset_value_is_seconds_from_now() -> None:
    reading = parse_budget(
        httpx.Headers({"RateLimit-Remaining": "3", "RateLimit-Reset": "20"}), NOW
    )
    assert reading is not None
    assert reading.reset_at == NOW + 20


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        samples = [full_jitter(attempt, rng) for _ in range(50)]
        cap = min(30.0, 0.5 * 2**attempt)
        assert all(0 <= s <= cap for s in samples)
        assert len(set(samples)) > 1  # jittered, not a fixed delay


async def test_blocked_host_waits_until_the_given_time() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimits(clock).for_host("hub.example")
    limiter.block_until(NOW + 42)
    await limiter.acquire(is_pull=False)
    assert clock.now() >= NOW + 42


async def test_wait_beyond_max_wait_raises_instead_of_sleeping() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimits(clock, max_wait=60).for_host("registry.example")
    limiter.block_until(NOW + 3600)
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire(is_pull=False)
    assert caught.value.retry_at.timestamp() == NOW + 3600
    assert clock.sleeps == []


async def test_nearly_spent_budget_is_spread_until_the_reset() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimits(clock).for_host("hub.example")
    limiter.observe(
        httpx.Headers(
            {
                "X-RateLimit-Limit": "180",
                "X-RateLimit-Remaining": "5",
                "X-RateLimit-Reset": str(int(NOW + 60)),
            }
        )
    )
    sent = []
    for _ in range(5):
        await limiter.acquire(is_pull=False)
        sent.append(clock.now() - NOW)
    # 5 requests left, 60 s to go: one every 12 s, the last one still before the reset.
    assert sent == [0, 12, 24, 36, 48]
    assert limiter.remaining() == 0


async def test_spent_budget_waits_for_the_reset() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimits(clock).for_host("hub.example")
    limiter.observe(
        httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 30))})
    )
    await limiter.acquire(is_pull=False)
    assert clock.now() == NOW + 30
    assert limiter.remaining() is None  # the window rolled over; the next response will tell


async def test_spent_pull_budget_does_not_slow_heads() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimits(clock, max_wait=120).for_host("registry-1.example")
    limiter.observe(
        httpx.Headers({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"})
    )
    await limiter.acquire(is_pull=False)  # a HEAD costs no pull
    assert clock.sleeps == []
    with pytest.raises(RateLimited):  # a GET would need a refill up to 6 h away
        await limiter.acquire(is_pull=True)
    assert limiter.remaining(pulls=True) == 0


def test_quay_style_double_challenge_is_split_correctly() -> None:
    headers = httpx.Headers(
        [
            (
                "WWW-Authenticate",
                'Basic realm="quay.io", Bearer realm="https://quay.io/v2/auth",service="quay.io"',
            )
        ]
    )
    basic, bearer = parse_challenges(headers)
    assert (basic.scheme, basic.realm) == ("basic", "quay.io")
    assert (bearer.scheme, bearer.realm) == ("bearer", "https://quay.io/v2/auth")
    assert bearer.params["service"] == "quay.io"


def test_bearer_challenge_with_scope() -> None:
    headers = httpx.Headers(
        {
            "Www-Authenticate": 'Bearer realm="https://auth.docker.io/token",'
            'service="registry.docker.io",scope="repository:library/redis:pull"'
        }
    )
    (challenge,) = parse_challenges(headers)
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/redis:pull",
    }
