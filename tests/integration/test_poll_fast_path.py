"""The poll's fast path (devices/fastpath.py) against the FastAPI route, on both databases:
for every answer a poll can get, the client sees the same status, headers and body whether
the fast path answered or the route did."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tagwarden.config import Settings
from tagwarden.devices.fastpath import PollFastPath, poll_uuid
from tests.factories import bearer, make_settings, register

STATE = "/api/v1/device/{uuid}/state"
FAILURES_PER_MINUTE = 4


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Index refreshed by the tests; a small failure limit to reach the 429.
    return make_settings(
        database_url,
        device_index_refresh_seconds=60.0,
        auth_failures_per_minute=FAILURES_PER_MINUTE,
    )


class Paths:
    """Which requests the fast path answered itself; ``routed`` sends them all to the route."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answered = 0
        self.routed = False
        unchanged = PollFastPath._unchanged

        async def spy(fast: PollFastPath, scope: Any, uuid: str, send: Any) -> bool:
            if self.routed:
                return False
            sent = await unchanged(fast, scope, uuid, send)
            self.answered += sent
            return sent

        monkeypatch.setattr(PollFastPath, "_unchanged", spy)


def _seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    # Retry-After counts down with the clock: its presence is compared, not its value.
    headers = [
        (name, "<seconds>" if name == "retry-after" else value)
        for name, value in response.headers.multi_items()
    ]
    return response.status_code, headers, response.content


async def _both(
    client: httpx.AsyncClient, paths: Paths, method: str, url: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response, int]:
    """The same request through the fast path and through the route, and how many of the two
    the fast path answered itself."""
    before = paths.answered
    paths.routed = False
    fast = await client.request(method, url, headers=headers)
    paths.routed = True
    routed = await client.request(method, url, headers=headers)
    paths.routed = False
    assert _seen(fast) == _seen(routed)
    return fast, routed, paths.answered - before


async def test_every_poll_answer_is_the_routes_own(
    client: httpx.AsyncClient, tokens: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(monkeypatch)
    key = await register(client, tokens.headers("admin"), "d1")
    other_key = await register(client, tokens.headers("admin"), "d2")
    url = STATE.format(uuid="d1")

    ok, _, answered = await _both(client, paths, "GET", url, bearer(key))
    assert (ok.status_code, answered) == (200, 0)  # a body is always the database's
    etag = ok.headers["etag"]
    assert ok.headers["x-poll-interval"]
    assert ok.headers["x-content-type-options"] == "nosniff"

    await app.state.device_index.refresh()
    presence = app.state.device_presence
    await presence.flush()
    for if_none_match in (etag, f"W/{etag}", "*", f'"0.1", {etag}'):
        unchanged, _, answered = await _both(
            client, paths, "GET", url, bearer(key) | {"If-None-Match": if_none_match}
        )
        assert (unchanged.status_code, answered, unchanged.content) == (304, 1, b"")
        assert unchanged.headers["etag"] == etag
        assert "content-security-policy" in unchanged.headers
    assert presence.pending == 1  # the fast path's polls are seen too
    stale = bearer(key) | {"If-None-Match": '"0.1"'}
    assert (await _both(client, paths, "GET", url, stale))[0].status_code == 200

    metric = app.state.metrics.registry.get_sample_value
    labels = {"route": STATE, "method": "GET", "status": "304"}
    assert metric("tagwarden_http_requests_total", labels) == 8.0

    refused = [
        ({}, 401),  # no key: not a failed check
        ({"Authorization": "Basic abc"}, 401),
        (bearer(other_key) | {"If-None-Match": etag}, 403),  # a real key: not counted either
        (bearer("twd_wrong") | {"If-None-Match": etag}, 401),  # counted, twice
        (bearer("twd_wrong"), 401),  # counted, twice: the limit is reached
        (bearer("twd_wrong") | {"If-None-Match": etag}, 429),
    ]
    for headers, status in refused:
        fast, _, answered = await _both(client, paths, "GET", url, headers)
        assert (fast.status_code, answered) == (status, 0)
    assert "retry-after" in fast.headers
    # A valid key is never refused by the throttle, on either path.
    unchanged, _, answered = await _both(
        client, paths, "GET", url, bearer(key) | {"If-None-Match": etag}
    )
    assert (unchanged.status_code, answered) == (304, 1)


async def test_other_requests_on_the_path_reach_the_router(
    client: httpx.AsyncClient, tokens: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(monkeypatch)
    key = await register(client, tokens.headers("admin"), "d1")
    for method, url, status in [
        ("GET", "/api/v1/device//state", 404),
        ("GET", "/api/v1/device/d1/state/more", 404),
        ("GET", STATE.format(uuid="unknown"), 403),  # d1's key on a device that is not there
        ("HEAD", STATE.format(uuid="d1"), 405),
    ]:
        fast, _, answered = await _both(
            client, paths, method, url, bearer(key) | {"If-None-Match": "*"}
        )
        assert (fast.status_code, answered) == (status, 0)


def test_only_the_polls_path_is_taken() -> None:
    assert poll_uuid("/api/v1/device/d-1/state") == "d-1"
    for path in ("/api/v1/device//state", "/api/v1/device/a/b/state", "/api/v1/devices/a/state"):
        assert poll_uuid(path) is None
