"""Devices on both databases: registration and keys, the polled target state, reports."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.devices.models import Device, DeviceApp
from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    activate,
    add_image,
    bearer,
    monitor_for,
    register,
    report,
    rollout,
)


@pytest.mark.parametrize(("given", "stored"), [("x86_64", "amd64"), ("x86-64", "amd64")])
async def test_a_device_registers_with_the_architecture_uname_prints(
    client: httpx.AsyncClient, tokens: Any, given: str, stored: str
) -> None:
    created = await client.post(
        "/api/v1/devices",
        json={"uuid": "intel-1", "architecture": given},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["architecture"] == stored


async def test_registration_shows_the_key_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await client.post(
        "/api/v1/devices",
        json={"uuid": "device-uuid-1", "name": "shop 1", "architecture": "aarch64"},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["device_key"]
    assert key.startswith("twd_")
    assert (body["uuid"], body["architecture"], body["labels"]) == ("device-uuid-1", "arm64", {})

    listed = await client.get("/api/v1/devices", headers=tokens.headers("viewer"))
    assert listed.json()["total"] == 1
    assert key not in listed.text
    shown = await client.get("/api/v1/devices/device-uuid-1", headers=tokens.headers("viewer"))
    assert shown.json()["apps"] == {}
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Device.key_hash))).all()
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "device.registered")
        )
    assert key not in stored
    assert len(stored[0]) == 64
    assert audited == 1


@pytest.mark.parametrize(
    ("role", "body", "status", "code"),
    [
        ("viewer", {"uuid": "d1", "architecture": "amd64"}, 403, "forbidden"),
        ("approver", {"uuid": "d1", "architecture": "amd64"}, 403, "forbidden"),
        ("admin", {"uuid": "bad uuid!", "architecture": "amd64"}, 422, "invalid_input"),
        ("admin", {"uuid": "d1", "architecture": "amd 64"}, 422, "invalid_input"),
        ("admin", {"uuid": "d1", "architecture": "amd64", "labels": {"": "x"}}, 422, None),
        ("admin", {"uuid": "d1"}, 422, "invalid_input"),
    ],
)
async def test_bad_registrations_are_refused_with_a_reason(
    client: httpx.AsyncClient, tokens: Any, role: str, body: Any, status: int, code: str | None
) -> None:
    response = await client.post("/api/v1/devices", json=body, headers=tokens.headers(role))
    assert response.status_code == status, response.text
    assert set(response.json()) == {"detail", "code"}
    if code:
        assert response.json()["code"] == code


async def test_registering_a_uuid_twice_is_a_conflict(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    await register(client, tokens.headers("admin"), "d1")
    again = await client.post(
        "/api/v1/devices",
        json={"uuid": "d1", "architecture": "amd64"},
        headers=tokens.headers("admin"),
    )
    assert again.status_code == 409
    assert again.json()["code"] == "device_exists"


async def test_state_has_an_etag_and_a_conditional_poll_gets_304_until_the_target_changes(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    first = await client.get("/api/v1/device/d1/state", headers=bearer(key))
    assert first.status_code == 200
    assert first.json() == {"uuid": "d1", "apps": {}, "poll_interval": 60, "version": 1}
    etag = first.headers["etag"]
    assert first.headers["x-poll-interval"] == "60"

    again = await client.get(
        "/api/v1/device/d1/state", headers=bearer(key) | {"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag

    image_id = await add_image(sessionmaker)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    await rollout(client, tokens.headers("approver"), devices=["d1"], strategy="all-at-once")
    await monitor_for(app, FakeClock.at_wall_time()).tick()

    changed = await client.get(
        "/api/v1/device/d1/state", headers=bearer(key) | {"If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    body = changed.json()
    assert body["apps"]["redis"]["image"] == f"redis:7.2.5-alpine@{NEW}"
    # In an active batch the device is told to poll sooner.
    assert body["poll_interval"] == 10
    assert changed.headers["x-poll-interval"] == "10"


async def test_a_device_key_reads_and_writes_only_its_own_device(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    key1 = await register(client, tokens.headers("admin"), "d1")
    key2 = await register(client, tokens.headers("admin"), "d2")
    assert (await client.get("/api/v1/device/d2/state", headers=bearer(key2))).status_code == 200
    other = await client.get("/api/v1/device/d2/state", headers=bearer(key1))
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden"
    write = await client.patch(
        "/api/v1/device/d2/state",
        json={"apps": {"redis": {"status": "running"}}},
        headers=bearer(key1),
    )
    assert write.status_code == 403
    unknown = await client.get("/api/v1/device/d1/state", headers=bearer("twd_nope"))
    assert unknown.status_code == 401
    missing = await client.get("/api/v1/device/d1/state")
    assert missing.status_code == 401
    # An API token is not a device key, whatever its role.
    admin = await client.get("/api/v1/device/d1/state", headers=tokens.headers("admin"))
    assert admin.status_code == 401


async def test_reports_are_kept_per_app_and_bad_reports_are_refused(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    await report(
        client, "d1", key, digest=NEW, status="failed", health="unknown", reason="disk_full"
    )
    shown = await client.get("/api/v1/devices/d1", headers=tokens.headers("viewer"))
    reported = shown.json()["apps"]["redis"]["reported"]
    assert (reported["status"], reported["reason"], reported["digest"]) == (
        "failed",
        "disk_full",
        NEW,
    )
    for bad in (
        {"apps": {"redis": {"status": "exploded"}}},
        {"apps": {"redis": {"status": "failed", "reason": "gremlins"}}},
        {"apps": {"Bad Name": {"status": "running"}}},
        {"nope": 1},
    ):
        response = await client.patch("/api/v1/device/d1/state", json=bad, headers=bearer(key))
        assert response.status_code == 422, bad
        assert response.json()["code"] == "invalid_input"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(DeviceApp)) == 1


async def test_last_seen_is_buffered_in_memory_and_flushed_in_one_batch(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    keys = {u: await register(client, tokens.headers("admin"), u) for u in ("d1", "d2")}
    for _ in range(3):
        for uuid, key in keys.items():
            await client.get(f"/api/v1/device/{uuid}/state", headers=bearer(key))
    async with sessionmaker() as session:
        seen = (await session.scalars(select(Device.last_seen_at))).all()
    assert seen == [None, None]  # polls wrote nothing
    assert app.state.device_presence.pending == 2
    assert await app.state.device_presence.flush() == 2
    async with sessionmaker() as session:
        seen = (await session.scalars(select(Device.last_seen_at))).all()
    assert all(s is not None for s in seen)


async def test_deleting_a_device_needs_admin_and_forgets_its_key(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    refused = await client.delete("/api/v1/devices/d1", headers=tokens.headers("approver"))
    assert refused.status_code == 403
    deleted = await client.delete("/api/v1/devices/d1", headers=tokens.headers("admin"))
    assert deleted.status_code == 200
    assert (await client.get("/api/v1/device/d1/state", headers=bearer(key))).status_code == 401
    assert (
        await client.get("/api/v1/devices/d1", headers=tokens.headers("viewer"))
    ).status_code == 404


async def test_devices_are_listed_by_labels_with_paging(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    fleet = {
        "d1": {"site": "shop", "ring": "canary"},
        "d2": {"site": "shop", "ring": "main"},
        "d3": {"site": "lab", "ring": "canary"},
        "d4": {"site": "shop"},
        "d5": {},
    }
    for uuid, labels in fleet.items():
        created = await client.post(
            "/api/v1/devices",
            json={"uuid": uuid, "architecture": "amd64", "labels": labels},
            headers=tokens.headers("admin"),
        )
        assert created.status_code == 201, created.text

    async def listed(query: str) -> tuple[list[str], int]:
        response = await client.get(f"/api/v1/devices?{query}", headers=tokens.headers("viewer"))
        assert response.status_code == 200, response.text
        return [d["uuid"] for d in response.json()["items"]], response.json()["total"]

    assert await listed("label=site=shop") == (["d1", "d2", "d4"], 3)
    assert await listed("label=site=shop&label=ring=canary") == (["d1"], 1)  # AND
    assert await listed("label=site=shop&limit=2&offset=1") == (["d2", "d4"], 3)
    assert await listed("label=ring=") == ([], 0)  # an empty value is a value, not "any"
    assert await listed("label=site=nowhere") == ([], 0)
    refused = await client.get("/api/v1/devices?label=site", headers=tokens.headers("viewer"))
    assert refused.status_code == 422
    assert "must be key=value" in refused.text
