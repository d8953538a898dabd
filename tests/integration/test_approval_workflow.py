"""Seed 000, steps 2 and 3, on both databases: review, decision, activation."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import ImageTag
from tagwarden.notify.models import NotificationChannel, NotificationEvent
from tests.factories import DIGEST, add_redis, seed_request


async def test_seed_example_approve_then_process_creates_one_row_per_architecture(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"auto_process_approved": False})
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])

    listed = await client.get("/api/v1/images/approvals", headers=tokens.headers("viewer"))
    assert [r["id"] for r in listed.json()["items"]] == [123]
    assert listed.json()["items"][0]["metadata"]["architectures"] == ["amd64", "arm64"]

    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve",
        json={"notes": "Security patches included"},
        headers=tokens.headers("approver"),
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["reviewed_by"] == "approver@example.com"
    assert body["notes"] == "Security patches included"
    assert body["reviewed_at"] is not None
    assert body["processed_at"] is None

    processed = await client.post(
        f"/api/v1/images/approvals/{request_id}/process", headers=tokens.headers("approver")
    )
    assert processed.status_code == 200, processed.text
    result = processed.json()
    assert result["created"] == ["amd64", "arm64"]
    assert result["already_processed"] is False
    assert result["approval_request"]["processed_at"] is not None

    async with sessionmaker() as session:
        rows = (await session.scalars(select(ImageTag).order_by(ImageTag.architecture))).all()
    assert [(r.tag, r.architecture, r.digest) for r in rows] == [
        ("7.2.5-alpine", "amd64", DIGEST),
        ("7.2.5-alpine", "arm64", DIGEST),
    ]
    assert rows[0].metadata_ == {"architectures": ["amd64"], "source": "image_monitor"}
    assert rows[1].metadata_ == {"architectures": ["arm64"], "source": "image_monitor"}
    assert rows[0].last_updated is not None
    assert rows[0].last_updated.isoformat() == "2025-10-17T10:30:00+00:00"
    assert all(r.image_id == image["id"] and r.approval_request_id == 123 for r in rows)

    tags = await client.get(f"/api/v1/images/{image['id']}/tags", headers=tokens.headers("viewer"))
    assert sorted(t["architecture"] for t in tags.json()) == ["amd64", "arm64"]


async def test_processing_twice_adds_nothing_and_answers_with_what_exists(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    # Auto-processing is on by default: approving activates in the same transaction.
    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("admin")
    )
    assert approved.status_code == 200
    assert len(approved.json()["image_tags"]) == 2

    again = await client.post(
        f"/api/v1/images/approvals/{request_id}/process", headers=tokens.headers("admin")
    )
    assert again.status_code == 200
    assert again.json()["already_processed"] is True
    assert again.json()["created"] == []
    assert len(again.json()["image_tags"]) == 2
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ImageTag)) == 2
        activations = await session.scalar(
            select(func.count()).where(AuditEntry.action == "tag.activated")
        )
    assert activations == 1


async def test_second_decision_on_a_request_is_a_conflict(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    first = await client.post(
        f"/api/v1/images/approvals/{request_id}/reject",
        json={"notes": "not yet"},
        headers=tokens.headers("approver"),
    )
    assert first.status_code == 200
    for action in ("approve", "reject"):
        again = await client.post(
            f"/api/v1/images/approvals/{request_id}/{action}", headers=tokens.headers("admin")
        )
        assert again.status_code == 409
        assert again.json()["code"] == "already_decided"
        assert "rejected" in again.json()["detail"]
    async with sessionmaker() as session:
        request = await session.get(ApprovalRequest, request_id)
        assert request is not None
        assert (request.status, request.reviewed_by, request.notes) == (
            "rejected",
            "approver@example.com",
            "not yet",
        )
        assert await session.scalar(select(func.count()).select_from(ImageTag)) == 0


async def test_processing_a_request_that_is_not_approved_is_a_conflict(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    response = await client.post(
        f"/api/v1/images/approvals/{request_id}/process", headers=tokens.headers("admin")
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "approval request 123 is pending; only approved requests can be processed",
        "code": "not_approved",
    }


async def test_viewer_cannot_approve(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    response = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("viewer")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    pending = await client.get(
        f"/api/v1/images/approvals/{request_id}", headers=tokens.headers("viewer")
    )
    assert pending.json()["status"] == "pending"


async def test_bulk_decision_gives_a_result_per_id(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await seed_request(sessionmaker, image["id"], request_id=1, tag="7.2.5")
    await seed_request(sessionmaker, image["id"], request_id=2, tag="7.2.6")
    await client.post("/api/v1/images/approvals/2/reject", headers=tokens.headers("admin"))
    response = await client.post(
        "/api/v1/images/approvals/bulk",
        json={"ids": [1, 2, 999], "action": "approve", "notes": "weekly batch"},
        headers=tokens.headers("approver"),
    )
    assert response.status_code == 200
    body = response.json()
    assert [(r["id"], r["ok"], r["code"]) for r in body["results"]] == [
        (1, True, None),
        (2, False, "already_decided"),
        (999, False, "not_found"),
    ]
    assert (body["succeeded"], body["failed"]) == (1, 2)
    async with sessionmaker() as session:
        tags = (await session.scalars(select(ImageTag.tag).distinct())).all()
    assert tags == ["7.2.5"]


async def test_image_added_by_non_admin_waits_for_an_image_level_request(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    added = await client.post(
        "/api/v1/images",
        json={"image_name": "grafana", "namespace": "grafana"},
        headers=tokens.headers("approver"),
    )
    assert added.status_code == 201
    assert added.json()["approval_status"] == "pending"
    listed = await client.get("/api/v1/images/approvals", headers=tokens.headers("viewer"))
    [request] = listed.json()["items"]
    assert (request["tag_name"], request["image_name"]) == (None, "grafana/grafana")

    monitoring = await client.put(
        f"/api/v1/images/{added.json()['id']}/monitoring",
        json={"watch_for_updates": True},
        headers=tokens.headers("admin"),
    )
    assert monitoring.status_code == 409

    approved = await client.post(
        f"/api/v1/images/approvals/{request['id']}/approve", headers=tokens.headers("admin")
    )
    assert approved.status_code == 200
    image = await client.get(
        f"/api/v1/images/{added.json()['id']}", headers=tokens.headers("viewer")
    )
    assert image.json()["approval_status"] == "approved"

    monitoring = await client.put(
        f"/api/v1/images/{added.json()['id']}/monitoring",
        json={"watch_for_updates": True},
        headers=tokens.headers("admin"),
    )
    assert monitoring.status_code == 200
    assert monitoring.json()["message"] == "Monitoring enabled successfully"
    assert monitoring.json()["image"]["watch_for_updates"] is True
    assert monitoring.json()["image"]["next_check_at"] is not None


async def test_an_image_level_request_is_announced_like_any_other(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(
            NotificationChannel(
                name="ops",
                kind="webhook",
                config={"url": "http://127.0.0.1:9/hook"},
                events=["approval.requested"],
            )
        )
    added = await client.post(
        "/api/v1/images",
        json={"image_name": "grafana", "namespace": "grafana"},
        headers=tokens.headers("approver"),
    )
    assert added.status_code == 201, added.text
    async with sessionmaker() as session:
        events = (await session.scalars(select(NotificationEvent))).all()
    assert [(e.event, e.payload["image"], e.payload["tag"]) for e in events] == [
        ("approval.requested", "grafana/grafana", None)
    ]
