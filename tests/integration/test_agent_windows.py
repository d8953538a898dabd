"""The agent and maintenance windows, on a real Docker engine with the real registry and server:
outside the window it pre-fetches (the image is there, the old container still runs), inside
it switches.

The server's clock (the rollout monitor's and the requests') is the wall clock plus an offset
the test sets: the window is two hours ahead when the rollout starts, and the test then moves
the clock into it rather than wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagwarden.app import create_app
from tagwarden.auth.deps import get_clock
from tagwarden.cli.demo import prepare, serving
from tagwarden.db import utcnow
from tagwarden.testing.clock import OffsetClock
from tests.integration.docker_engine import docker_engine, test_images
from tests.integration.real_registry import RealRegistry
from tests.integration.test_agent_engine import (
    APP,
    Fleet,
    Server,
    agent_world,
    engine_settings,
    fleet,
    server_database_url,
    wait_for,
)

__all__ = ["agent_world", "docker_engine", "fleet", "test_images"]  # fixtures

pytestmark = [pytest.mark.registry, pytest.mark.docker]


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    real_registry: RealRegistry,
    clock: OffsetClock,
) -> Iterator[Server]:
    """test_agent_engine's server, on the test's clock."""
    settings = engine_settings(server_database_url(request, tmp_path), real_registry)
    token = asyncio.run(prepare(settings))
    app = create_app(settings)
    app.state.rollout_monitor.clock = clock
    app.dependency_overrides[get_clock] = lambda: clock
    seen: list[tuple[str, int]] = []

    @app.middleware("http")
    async def _record(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        seen.append((f"{request.method} {request.url.path}", response.status_code))
        return response

    with (
        serving(app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
    ):
        yield Server(url, token, settings, http, seen)


def forget_image(fleet: Fleet, version: str) -> None:
    """The engine is the session's: an earlier test may have pulled this image."""
    client = fleet.engine.client()
    try:
        for image in client.images.list():
            if f"{fleet.images[version].repository}@{fleet.images[version].digest}" in (
                image.attrs.get("RepoDigests") or []
            ):
                client.images.remove(image.id, force=True)
    finally:
        client.close()


def image_present(fleet: Fleet, version: str) -> bool:
    client = fleet.engine.client()
    try:
        reference = f"{fleet.images[version].repository}@{fleet.images[version].digest}"
        return any(reference in i.attrs.get("RepoDigests", []) for i in client.images.list())
    finally:
        client.close()


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_the_agent_prefetches_outside_the_window_and_switches_inside_it(
    fleet: Fleet, clock: OffsetClock
) -> None:
    uuid = "win-a"
    fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    v1, v2 = fleet.images["v1"].digest, fleet.images["v2"].digest
    fleet.activate("v1")
    assert fleet.settled(fleet.rollout("v1", [uuid])["id"])["status"] == "completed"
    assert fleet.running(uuid) == (v1, "healthy")
    forget_image(fleet, "v2")
    assert not image_present(fleet, "v2")

    # A daily window two hours from now (UTC), half an hour long: closed now.
    opening = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    window = {"cron": f"{opening.minute} {opening.hour} * * *", "duration_minutes": 30,
              "timezone": "UTC"}  # fmt: skip
    fleet.activate("v2")
    created = fleet.rollout("v2", [uuid], windows=[window])
    rid = created["id"]

    # Outside the window: v2 is pulled, v1 still runs, alone, and is what the device reports.
    wait_for("v2 pre-fetched", lambda: image_present(fleet, "v2"))
    assert fleet.running(uuid) == (v1, "healthy")
    assert [c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid)] == [v1]
    state = fleet.server.ok("GET", f"/api/v1/devices/{uuid}")["apps"][APP]
    assert state["reported"]["digest"] == v1
    body = fleet.server.ok("GET", f"/api/v1/rollouts/{rid}")
    assert body["status"] == "running"
    assert [d["state"] for d in body["devices"]] == ["scheduled"]

    # The window opens (the server's clock moves to a few seconds past its opening).
    clock.offset = (opening + timedelta(seconds=5) - datetime.now(UTC)).total_seconds()
    done = fleet.settled(rid)
    assert done["status"] == "completed", done
    assert fleet.running(uuid) == (v2, "healthy")
    digests = sorted(c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid))
    assert digests == sorted([v2, v1])  # v1 is kept stopped as the previous container
    assert (
        fleet.server.ok("GET", f"/api/v1/devices/{uuid}")["apps"][APP]["reported"]["digest"] == v2
    )
