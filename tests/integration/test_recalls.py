"""Recalls end to end on both databases: an OSV import that hits an activated digest in a
running rollout pauses it with ``recalled``, refuses new rollouts, emits ``tag.recalled``,
lists the devices that run it; clearing a recall is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals import history
from tagwarden.audit.models import AuditEntry
from tagwarden.notify.models import NotificationChannel, NotificationEvent
from tagwarden.testing.clock import FakeClock
from tagwarden.vulnerabilities import service
from tagwarden.vulnerabilities.osv import files_in, read_file
from tests.factories import (
    CRITICAL_V3,
    MEDIUM_V3,
    NEW,
    activate,
    add_image,
    add_sbom,
    apk,
    monitor_for,
    osv_record,
    register,
    rollout,
    show,
    write_osv,
)

PLATFORM = "sha256:" + "e5" * 32


async def osv_import(
    sessionmaker: async_sessionmaker[AsyncSession], path: Path
) -> service.RematchResult:
    async with sessionmaker() as session, session.begin():
        found = [r for f in files_in(path) for r in read_file(f)]
        _, matched = await service.import_and_rematch(
            session,
            found,
            live=await history.live_digests(session),
            previous_of=history.previous_approved_many,
            actor="cli:osv-import",
        )
    return matched


async def setup(
    sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, tokens: Any
) -> int:
    image_id = await add_image(sessionmaker)
    await activate(
        sessionmaker, image_id, "7.2.5-alpine", NEW, ("amd64",), platform={"amd64": PLATFORM}
    )
    await add_sbom(sessionmaker, PLATFORM, [apk("openssl", "3.3.2-r2"), apk("musl", "1.2.5-r0")])
    async with sessionmaker() as session, session.begin():
        session.add(
            NotificationChannel(
                name="hooks", kind="webhook", config={"url": "http://127.0.0.1:9/"},
                events=["tag.recalled"],
            )
        )  # fmt: skip
    response = await client.put(
        f"/api/v1/images/{image_id}/policy",
        json={"vulnerabilities": {"block_severity": "high"}},
        headers=tokens.headers("admin"),
    )
    assert response.status_code == 200, response.text
    return image_id


CRITICAL = osv_record(
    "CVE-2026-9000",
    "Alpine:v3.20",
    "openssl",
    [{"introduced": "0"}, {"fixed": "3.3.2-r10"}],
    vector=CRITICAL_V3,
    modified="2026-12-01T09:00:00Z",
)


async def test_an_import_recalls_an_activated_digest_and_pauses_its_running_rollout(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tokens: Any,
    app: Any,
    tmp_path: Path,
) -> None:
    image_id = await setup(sessionmaker, client, tokens)
    admin, approver, viewer = (tokens.headers(r) for r in ("admin", "approver", "viewer"))
    for uuid in ("d1", "d2", "d3"):
        await register(client, admin, uuid)
    clock = FakeClock.at_wall_time()
    monitor = monitor_for(app, clock)
    created = await rollout(client, approver, devices=["d1", "d2"])
    await monitor.tick()
    assert (await show(client, viewer, created["id"]))["status"] == "running"

    # A medium finding is below block_severity: nothing is recalled.
    medium = osv_record(
        "CVE-2026-8000", "Alpine:v3.20", "musl", [{"introduced": "0"}], vector=MEDIUM_V3
    )
    write_osv(tmp_path / "first", [medium])
    assert (await osv_import(sessionmaker, tmp_path / "first")).recalled == []

    write_osv(tmp_path / "second", [CRITICAL])
    matched = await osv_import(sessionmaker, tmp_path / "second")
    assert [(r.tag, r.digest, r.ids) for r in matched.recalled] == [
        ("7.2.5-alpine", NEW, ["CVE-2026-9000"])
    ]
    body = await show(client, viewer, created["id"])
    assert (body["status"], body["status_reason"]) == ("paused", "recalled")
    tags = (await client.get(f"/api/v1/images/{image_id}/tags", headers=viewer)).json()
    row = tags[0]
    assert row["is_recalled"] is True
    assert "CVE-2026-9000 (critical) in openssl 3.3.2-r2" in row["recall_reason"]
    assert row["recalled_at"] is not None

    refused = await client.post(
        "/api/v1/rollouts",
        json={
            "image": "redis",
            "tag": "7.2.5-alpine",
            "strategy": "all-at-once",
            "devices": ["d3"],
        },
        headers=approver,
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "tag_recalled"

    async with sessionmaker() as session:
        events = (
            await session.scalars(
                select(NotificationEvent).where(NotificationEvent.event == "tag.recalled")
            )
        ).all()
    assert len(events) == 1
    assert events[0].payload["digest"] == NEW
    assert events[0].payload["ids"] == ["CVE-2026-9000"]
    assert events[0].payload["paused_rollouts"] == [created["id"]]

    running = await client.get("/api/v1/devices", params={"digest": NEW}, headers=viewer)
    assert running.status_code == 200, running.text
    assert [d["uuid"] for d in running.json()["items"]] == ["d1"]  # d2's batch is not targeted

    # The same data again recalls nothing twice.
    assert (await osv_import(sessionmaker, tmp_path / "second")).recalled == []

    denied = await client.post(
        f"/api/v1/images/{image_id}/tags/unrecall", json={"tag": "7.2.5-alpine"}, headers=approver
    )
    assert denied.status_code == 403
    cleared = await client.post(
        f"/api/v1/images/{image_id}/tags/unrecall",
        json={"tag": "7.2.5-alpine", "notes": "patched on the devices by hand"},
        headers=admin,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()[0]["is_recalled"] is False
    async with sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "tag.unrecalled")
        )
    assert entry is not None
    assert entry.after is not None
    assert entry.after["notes"] == "patched on the devices by hand"
    assert entry.before == {"is_recalled": True, "recall_reason": row["recall_reason"]}
    unknown = await client.post(
        f"/api/v1/images/{image_id}/tags/unrecall", json={"tag": "nope"}, headers=admin
    )
    assert unknown.status_code == 404


async def test_an_allowlist_entry_clears_the_recall_it_covers(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tokens: Any,
    tmp_path: Path,
) -> None:
    image_id = await setup(sessionmaker, client, tokens)
    write_osv(tmp_path / "osv", [CRITICAL])
    assert len((await osv_import(sessionmaker, tmp_path / "osv")).recalled) == 1
    response = await client.put(
        f"/api/v1/images/{image_id}/policy",
        json={
            "vulnerabilities": {
                "block_severity": "high",
                "allowlist": [{"id": "CVE-2026-9000", "reason": "openssl not used"}],
            }
        },
        headers=tokens.headers("admin"),
    )
    assert response.status_code == 200, response.text
    tags = (
        await client.get(f"/api/v1/images/{image_id}/tags", headers=tokens.headers("viewer"))
    ).json()
    row = tags[0]
    assert row["is_recalled"] is False
    async with sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "tag.unrecalled")
        )
    assert entry is not None
    assert entry.after == {
        "tag": "7.2.5-alpine",
        "is_recalled": False,
        "cleared_by": "policy",
    }
