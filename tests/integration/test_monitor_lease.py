"""A crash mid-scan loses no interval, on both databases.

A claim is a lease of ``monitor_lease_seconds``: images whose check was never written are due
again when it runs out, and a scan still checking renews it, so no other replica checks twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.catalogue.models import Image
from tagwarden.clock import utc
from tagwarden.config import Settings
from tagwarden.db import utcnow
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import make_settings

HUB = "http://127.0.0.1:9"  # never dialled: the fake registry answers in-process
INTERVAL = timedelta(minutes=60)


class Gate(httpx.AsyncBaseTransport):
    """The fake registry behind a gate: requests wait while it is shut (a registry that hangs)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.open = asyncio.Event()
        self.open.set()
        self.waiting = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.waiting += 1
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1
        return await self.inner.handle_async_request(request)


@dataclass
class World:
    fake: FakeRegistry
    gate: Gate
    clock: FakeClock
    monitor: ImageMonitor
    client: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    admin: dict[str, str]
    ids: list[int]

    def replica(self) -> ImageMonitor:
        return ImageMonitor(
            self.monitor.settings,
            self.sessionmaker,
            self.monitor.http,
            state=self.monitor.state,
            clock=self.clock,
        )

    async def next_checks(self) -> list[datetime | None]:
        async with self.sessionmaker() as session:
            query = select(Image.next_check_at).where(Image.id.in_(self.ids)).order_by(Image.id)
            return list((await session.scalars(query)).all())


async def make_world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], lease: float
) -> AsyncIterator[World]:
    fake = FakeRegistry(clock=FakeClock())
    gate = Gate(fake.transport())
    configured = make_settings(
        settings.database_url,
        dockerhub_api_url=HUB,
        monitor_lease_seconds=lease,
        check_interval_minutes=int(INTERVAL.total_seconds() // 60),
    )
    app = create_app(configured, registry_transport=gate)
    clock = FakeClock.at_wall_time()
    monitor: ImageMonitor = app.state.monitor
    monitor.clock = clock
    monitor.state = RegistryState(clock=fake.clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client,
    ):
        world = World(fake, gate, clock, monitor, client, sessionmaker, tokens.headers("admin"), [])
        for i in range(4):
            fake.add_repository(f"library/img{i}", 3)
            response = await client.post(
                "/api/v1/images",
                json={"image_name": f"img{i}", "watch_for_updates": True},
                headers=world.admin,
            )
            assert response.status_code == 201, response.text
            world.ids.append(int(response.json()["id"]))
        clock.set(utcnow())  # added images are due from the moment they were added
        yield world


@pytest.fixture
async def world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    async for w in make_world(settings, tokens, sessionmaker, lease=60):
        yield w


async def test_images_claimed_by_a_scan_that_never_wrote_are_due_again_after_the_lease(
    world: World,
) -> None:
    # The crash: a replica claims every due image and dies before writing any check.
    claimed, _ = await world.monitor.claim()
    assert sorted(t.id for t in claimed) == world.ids
    started = utc(world.clock)

    # Before the lease runs out nobody checks them again (no double check)…
    world.clock.advance(timedelta(seconds=59))
    assert await world.replica().claim() == ([], 0)
    assert world.fake.stats.count("hub_tags") == 0

    # …after it, the next start checks every one of them, not an interval later.
    world.clock.advance(timedelta(seconds=2))
    summary = await world.replica().run_once()
    assert summary.images_checked == 4
    assert summary.errors == 0
    assert world.fake.stats.count("hub_tags") == 4
    # Written, each check sets the real next time: an interval ahead, not a lease.
    assert await world.next_checks() == [started + timedelta(seconds=61) + INTERVAL] * 4


async def test_a_scan_cancelled_mid_check_leaves_its_images_due_after_the_lease(
    world: World,
) -> None:
    world.gate.open.clear()  # the registry hangs
    scan = asyncio.create_task(world.monitor.run_once())
    for _ in range(1000):
        if world.gate.waiting == 4:
            break
        await asyncio.sleep(0.01)
    assert world.gate.waiting == 4  # every image's check is in flight
    scan.cancel()  # what kill -9 leaves in the database: claims and no results
    with contextlib.suppress(asyncio.CancelledError):
        await scan
    world.gate.open.set()

    world.clock.advance(timedelta(seconds=30))
    assert (await world.replica().run_once()).images_checked == 0
    world.clock.advance(timedelta(seconds=31))
    assert (await world.replica().run_once()).images_checked == 4


@pytest.fixture
async def short_lease_world(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    # Renewed every 0.1 s of real time; the clock the leases are written in is the test's.
    async for w in make_world(settings, tokens, sessionmaker, lease=0.3):
        yield w


async def test_a_check_still_running_keeps_its_lease_and_is_not_claimed_twice(
    short_lease_world: World,
) -> None:
    world = short_lease_world
    world.gate.open.clear()
    scan = asyncio.create_task(world.monitor.run_once())
    try:
        for _ in range(1000):
            if world.gate.waiting == 4:
                break
            await asyncio.sleep(0.01)
        assert world.gate.waiting == 4
        # Time passes well beyond lease and interval while the registry hangs.
        world.clock.advance(INTERVAL * 2)
        for _ in range(1000):  # until a renewal has run at the new time
            if all(n is not None and n > utc(world.clock) for n in await world.next_checks()):
                break
            await asyncio.sleep(0.02)
        assert await world.replica().claim() == ([], 0)
    finally:
        world.gate.open.set()
    summary = await asyncio.wait_for(scan, timeout=30)
    assert summary.images_checked == 4
    assert world.fake.stats.count("hub_tags") == 4  # each image once, not twice
    # The renewals stopped with the scan: what stays is each check's next time.
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await world.next_checks() == [utc(world.clock) + INTERVAL] * 4
