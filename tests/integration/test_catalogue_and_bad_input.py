"""The catalogue's endpoints, bad input answered with 4xx and nothing changed, and the audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import Image, ImageTag
from tests.factories import add_redis, seed_request


async def _counts(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, ...]:
    async with sessionmaker() as session:
        return tuple(
            [
                int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Image, ApprovalRequest, ImageTag, AuditEntry)
            ]
        )


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/v1/images", {"image_name": "Redis"}, 422),
        ("POST", "/api/v1/images", {"image_name": "re dis"}, 422),
        ("POST", "/api/v1/images", {"image_name": "redis", "namespace": "-bad"}, 422),
        ("POST", "/api/v1/images", {"image_name": "redis", "registry": "bad host!"}, 422),
        ("POST", "/api/v1/images", {"image_name": "redis", "tag_include": "(unclosed"}, 422),
        ("POST", "/api/v1/images", {"image_name": "redis", "unknown_field": 1}, 422),
        ("POST", "/api/v1/images", {"image_name": "redis"}, 409),  # already there
        ("POST", "/api/v1/images", "not json", 422),
        ("GET", "/api/v1/images/999", None, 404),
        ("GET", "/api/v1/images/abc", None, 422),
        ("PATCH", "/api/v1/images/1", {"tag_policy": "sometimes"}, 422),
        ("PATCH", "/api/v1/images/1", {"check_interval_minutes": 0}, 422),
        ("PATCH", "/api/v1/images/1", {"watch_tags": ["-bad"]}, 422),
        ("PATCH", "/api/v1/images/1", {"watch_tags": "latest"}, 422),
        ("PATCH", "/api/v1/images/1", {"watch_tags": None}, 422),
        ("POST", "/api/v1/images", {"image_name": "nginx", "watch_tags": ["a:b"]}, 422),
        ("PUT", "/api/v1/images/999/monitoring", {"watch_for_updates": True}, 404),
        ("POST", "/api/v1/images/1/tags/recommended", {"tag": ".hidden", "value": True}, 422),
        ("POST", "/api/v1/images/1/tags/deprecated", {"tag": "9.9.9", "value": True}, 404),
        ("POST", "/api/v1/images/approvals", {"image_id": 1, "tag_name": "-x"}, 422),
        ("POST", "/api/v1/images/approvals", {"image_id": 1, "tag_name": "8.0"}, 422),
        (
            "POST",
            "/api/v1/images/approvals",
            {
                "image_id": 1,
                "tag_name": "8.0",
                "metadata": {"architectures": ["amd64"], "digest": "md5:1"},
            },
            422,
        ),
        (
            "POST",
            "/api/v1/images/approvals",
            {"image_id": 999, "tag_name": "8.0", "metadata": {"architectures": ["amd64"]}},
            404,
        ),
        ("POST", "/api/v1/images/approvals/999/approve", {"notes": "x"}, 404),
        ("POST", "/api/v1/images/approvals/999/process", None, 404),
        ("POST", "/api/v1/images/approvals/bulk", {"ids": [], "action": "approve"}, 422),
        ("POST", "/api/v1/images/approvals/bulk", {"ids": [1], "action": "maybe"}, 422),
        ("GET", "/api/v1/images/approvals?status=unknown", None, 422),
        ("GET", "/api/v1/images?limit=0", None, 422),
    ],
)
async def test_bad_input_gets_a_4xx_and_changes_nothing(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    await add_redis(client, tokens.headers("admin"))
    before = await _counts(sessionmaker)
    kwargs: dict[str, Any] = (
        {
            "content": body,
            "headers": {**tokens.headers("admin"), "content-type": "application/json"},
        }
        if isinstance(body, str)
        else {"json": body, "headers": tokens.headers("admin")}
    )
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["detail"]
    assert await _counts(sessionmaker) == before


async def test_duplicate_pending_request_is_refused_by_the_database(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    body = {
        "image_id": image["id"],
        "tag_name": "7.4.0",
        "metadata": {"architectures": ["amd64"], "digest": "sha256:" + "1" * 64},
    }
    first = await client.post(
        "/api/v1/images/approvals", json=body, headers=tokens.headers("approver")
    )
    assert first.status_code == 201
    assert first.json()["source"] == "manual"
    assert first.json()["requested_by"] == "approver@example.com"
    second = await client.post(
        "/api/v1/images/approvals", json=body, headers=tokens.headers("approver")
    )
    assert second.status_code == 409
    assert second.json()["code"] == "request_pending"
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(ApprovalRequest))
    assert count == 1


@pytest.mark.parametrize(
    "last_updated", ["2026-01-31T03:04:05Z", "2026-03-30T23:59:59.1234567+14:00", "2026-02-01"]
)
async def test_a_manual_request_takes_any_iso_timestamp_the_server_reads(
    client: httpx.AsyncClient, tokens: Any, last_updated: str
) -> None:
    # The document shows one always-read form; the server reads every ISO 8601 timestamp.
    image = await add_redis(client, tokens.headers("admin"))
    body = {
        "image_id": image["id"],
        "tag_name": "7.4.0",
        "metadata": {"architectures": ["amd64"], "last_updated": last_updated},
    }
    created = await client.post(
        "/api/v1/images/approvals", json=body, headers=tokens.headers("approver")
    )
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["last_updated"] == last_updated


async def test_recommend_deprecate_patch_and_monitoring_are_audited(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await seed_request(sessionmaker, image["id"])
    await client.post("/api/v1/images/approvals/123/approve", headers=tokens.headers("admin"))
    base = f"/api/v1/images/{image['id']}"

    recommended = await client.post(
        f"{base}/tags/recommended", json={"tag": "7.2.5-alpine"}, headers=tokens.headers("approver")
    )
    assert recommended.status_code == 200
    assert [t["is_recommended"] for t in recommended.json()["image_tags"]] == [True, True]
    deprecated = await client.post(
        f"{base}/tags/deprecated",
        json={"tag": "7.2.5-alpine", "value": True},
        headers=tokens.headers("approver"),
    )
    assert all(t["is_deprecated"] for t in deprecated.json()["image_tags"])
    patched = await client.patch(
        base, json={"tag_policy": "all", "tag_exclude": "rc"}, headers=tokens.headers("admin")
    )
    assert (patched.json()["tag_policy"], patched.json()["tag_exclude"]) == ("all", "rc")
    await client.put(
        f"{base}/monitoring", json={"watch_for_updates": True}, headers=tokens.headers("admin")
    )
    disabled = await client.put(
        f"{base}/monitoring", json={"watch_for_updates": False}, headers=tokens.headers("admin")
    )
    assert disabled.json()["message"] == "Monitoring disabled successfully"

    audit = await client.get("/api/v1/audit?limit=100", headers=tokens.headers("viewer"))
    actions = [e["action"] for e in reversed(audit.json()["items"])]
    assert actions[-7:] == [
        "approval.approved",
        "tag.activated",
        "tag.recommended",
        "tag.deprecated",
        "image.updated",
        "image.monitoring_enabled",
        "image.monitoring_disabled",
    ]
    by_action = {e["action"]: e for e in audit.json()["items"]}
    assert by_action["approval.approved"]["actor"] == "admin@example.com"
    assert by_action["tag.deprecated"]["before"] == {"tag": "7.2.5-alpine", "deprecated": False}
    assert by_action["tag.deprecated"]["after"] == {"tag": "7.2.5-alpine", "deprecated": True}
    assert by_action["image.updated"]["before"] == {"tag_policy": "latest", "tag_exclude": None}
    for action in ("image.created", "token.created", "tag.activated", "image.monitoring_enabled"):
        assert action in by_action


async def test_watch_tags_are_set_on_create_replaced_on_update_and_shown(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    created = await client.post(
        "/api/v1/images",
        json={"image_name": "nginx", "watch_tags": ["latest", "stable", "latest"]},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["watch_tags"] == ["latest", "stable"]  # each once, in order
    base = f"/api/v1/images/{created.json()['id']}"
    patched = await client.patch(base, json={"watch_tags": ["7"]}, headers=tokens.headers("admin"))
    assert patched.json()["watch_tags"] == ["7"]
    untouched = await client.patch(base, json={"category": "web"}, headers=tokens.headers("admin"))
    assert untouched.json()["watch_tags"] == ["7"]
    cleared = await client.patch(base, json={"watch_tags": []}, headers=tokens.headers("admin"))
    assert cleared.json()["watch_tags"] == []
    plain = await client.post(
        "/api/v1/images", json={"image_name": "mysql"}, headers=tokens.headers("admin")
    )
    assert plain.json()["watch_tags"] == []


async def test_the_audit_log_refuses_updates_and_deletes(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_redis(client, tokens.headers("admin"))
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        async with sessionmaker() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
    async with sessionmaker() as session:
        actors = set((await session.scalars(select(AuditEntry.actor))).all())
    assert "mallory" not in actors
