"""The device index on both databases: unchanged polls without the database, and never a wrong
answer for longer than one refresh when another replica changes or deletes a device."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.auth.service import SYSTEM
from tagwarden.config import Settings
from tagwarden.devices import index as device_index
from tagwarden.devices import service
from tagwarden.devices.models import Device
from tests.factories import bearer, make_settings, register


@pytest.fixture
def settings(database_url: str) -> Settings:
    # A long interval: the background loop loads once at start-up, then the tests refresh.
    return make_settings(database_url, device_index_refresh_seconds=60.0)


@contextmanager
def another_replica(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Writes made inside look like another process's: this process's indexes are not told."""
    with monkeypatch.context() as patch:
        patch.setattr(device_index, "_indexes", {})
        yield


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _poll(client: httpx.AsyncClient, uuid: str, key: str, etag: str | None) -> httpx.Response:
    headers = bearer(key) | ({"If-None-Match": etag} if etag else {})
    return await client.get(f"/api/v1/device/{uuid}/state", headers=headers)


async def _bump(sessionmaker: async_sessionmaker[AsyncSession], uuid: str) -> None:
    async with sessionmaker() as session, session.begin():
        device_id = await session.scalar(select(Device.id).where(Device.uuid == uuid))
        assert device_id is not None
        await service.bump(session, [device_id], fast=True)


async def test_an_unchanged_poll_is_answered_from_the_index_without_the_database(
    client: httpx.AsyncClient, tokens: Any, app: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    await app.state.device_index.refresh()
    with statements(app) as seen:
        unchanged = await _poll(client, "d1", key, etag)
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    assert seen == []
    # The body always comes from the database.
    with statements(app) as seen:
        assert (await _poll(client, "d1", key, None)).status_code == 200
    assert seen


async def test_the_index_still_checks_the_key(
    client: httpx.AsyncClient, tokens: Any, app: Any
) -> None:
    key1 = await register(client, tokens.headers("admin"), "d1")
    await register(client, tokens.headers("admin"), "d2")
    etag = (await _poll(client, "d1", key1, None)).headers["etag"]
    await app.state.device_index.refresh()
    assert (await _poll(client, "d2", key1, etag)).status_code == 403
    assert (await _poll(client, "d1", "twd_guess", etag)).status_code == 401


async def test_a_change_made_in_this_process_is_seen_by_the_next_poll(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    await app.state.device_index.refresh()
    await _bump(sessionmaker, "d1")
    changed = await _poll(client, "d1", key, etag)
    assert changed.status_code == 200
    assert changed.json()["poll_interval"] == 10


async def test_a_change_on_another_replica_reaches_polls_at_the_next_refresh(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    await app.state.device_index.refresh()
    with another_replica(monkeypatch):
        await _bump(sessionmaker, "d1")
    # Until this replica refreshes, the device is told "unchanged": late, never wrong.
    assert (await _poll(client, "d1", key, etag)).status_code == 304
    assert await app.state.device_index.refresh() >= 1
    changed = await _poll(client, "d1", key, etag)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_a_device_deleted_on_another_replica_loses_its_key_at_the_next_refresh(
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    await app.state.device_index.refresh()
    with another_replica(monkeypatch):
        async with sessionmaker() as session, session.begin():
            await service.delete_device(session, "d1", SYSTEM)
    await app.state.device_index.refresh()
    assert len(app.state.device_index) == 0
    assert (await _poll(client, "d1", key, etag)).status_code == 401


async def test_a_device_registered_again_under_the_same_uuid_is_not_dropped_by_its_tombstone(
    client: httpx.AsyncClient, tokens: Any, app: Any
) -> None:
    await register(client, tokens.headers("admin"), "d1")
    await app.state.device_index.refresh()
    assert (await client.delete("/api/v1/devices/d1", headers=tokens.headers("admin"))).is_success
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    await app.state.device_index.refresh()
    with statements(app) as seen:
        assert (await _poll(client, "d1", key, etag)).status_code == 304
    assert seen == []


async def test_an_index_that_has_not_refreshed_for_two_intervals_is_not_trusted(
    client: httpx.AsyncClient, tokens: Any, app: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    etag = (await _poll(client, "d1", key, None)).headers["etag"]
    index = app.state.device_index
    await index.refresh()
    index._trusted_until = 0.0  # as if every refresh since had failed
    with statements(app) as seen:
        assert (await _poll(client, "d1", key, etag)).status_code == 304
    assert seen  # answered by the database


async def test_the_loaded_index_holds_nothing_the_garbage_collector_walks(
    client: httpx.AsyncClient, tokens: Any, app: Any
) -> None:
    for uuid in ("d1", "d2", "d3"):
        await register(client, tokens.headers("admin"), uuid)
    index = app.state.device_index
    await index.load()
    assert len(index) == 3
    # A full collection walks only tracked objects: a million of them was a 90 ms pause.
    assert not gc.is_tracked(index._entries)
    assert not any(gc.is_tracked(v) for v in index._entries.values())
    assert index.loaded.is_set()
    assert 0 < index.footprint() / len(index) <= 1024  # a tiny dict; 1M devices: bench


async def test_a_poll_without_a_device_key_is_refused_with_401(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    await register(client, tokens.headers("admin"), "d1")
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = await client.get("/api/v1/device/d1/state", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
