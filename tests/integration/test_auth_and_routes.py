"""Every route refuses a request without credentials; roles decide the rest."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.observability import flat_routes
from tests.factories import make_settings

# Public on purpose: liveness, the API's own documentation, and the admin pages' login form.
PUBLIC = {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/login"}


def _is_api(path: str) -> bool:
    """The JSON API (and metrics) answer 401; the admin pages send people to /login instead."""
    return path.startswith("/api/") or path == "/metrics"


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_route_refuses_a_request_without_a_token(
    client: httpx.AsyncClient, app: Any
) -> None:
    """Walks the app's routes, so routes added later are covered without editing this test."""
    checked = 0
    for path, methods in flat_routes(app):
        if path in PUBLIC or path.startswith("/static"):
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            response = await client.request(method, _fill(path))
            if not _is_api(path) and response.status_code == 303:
                location = response.headers["location"]
                assert location.startswith("/login?"), f"{method} {path} sent to {location}"
                checked += 1
                continue
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
            assert set(response.json()) == {"detail", "code"}, f"{method} {path}"
            checked += 1
    assert checked >= 20


async def test_a_wrong_or_revoked_token_is_refused(client: httpx.AsyncClient, tokens: Any) -> None:
    wrong = await client.get("/api/v1/images", headers={"Authorization": "Bearer tw_nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"

    me = await client.get("/api/v1/auth/me", headers=tokens.headers("approver"))
    assert me.json() == {"identity": "approver@example.com", "role": "approver"}
    listed = await client.get("/api/v1/tokens", headers=tokens.headers("admin"))
    approver_id = next(t["id"] for t in listed.json() if t["role"] == "approver")
    revoked = await client.delete(f"/api/v1/tokens/{approver_id}", headers=tokens.headers("admin"))
    assert revoked.status_code == 200
    again = await client.get("/api/v1/auth/me", headers=tokens.headers("approver"))
    assert again.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "expected"),
    [
        ("viewer", "GET", "/api/v1/images", None, 200),
        ("viewer", "POST", "/api/v1/images/approvals/bulk", {"ids": [1], "action": "approve"}, 403),
        ("viewer", "GET", "/api/v1/tokens", None, 403),
        ("approver", "GET", "/api/v1/tokens", None, 403),
        ("approver", "PUT", "/api/v1/images/1/monitoring", {"watch_for_updates": True}, 403),
        ("admin", "GET", "/api/v1/tokens", None, 200),
    ],
)
async def test_roles(
    client: httpx.AsyncClient,
    tokens: Any,
    role: str,
    method: str,
    path: str,
    body: Any,
    expected: int,
) -> None:
    response = await client.request(method, path, json=body, headers=tokens.headers(role))
    assert response.status_code == expected, response.text


async def test_tokens_are_stored_hashed_and_created_through_the_api_once(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await client.post(
        "/api/v1/tokens",
        json={"name": "ci", "role": "viewer", "identity": "ci@example.com"},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201
    raw = created.json()["token"]
    listed = await client.get("/api/v1/tokens", headers=tokens.headers("admin"))
    assert raw not in listed.text
    async with sessionmaker() as session:
        from tagwarden.auth.models import ApiToken

        stored = (await session.scalars(select(ApiToken.token_hash))).all()
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "token.created")
        )
    assert raw not in stored
    assert audited == 4  # three fixture tokens and this one
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.json()["identity"] == "ci@example.com"


async def test_health_needs_no_token_and_metrics_need_one(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}
    await client.get("/api/v1/images/42", headers=tokens.headers("viewer"))
    assert (await client.get("/metrics")).status_code == 401
    metrics = await client.get("/metrics", headers=tokens.headers("viewer"))
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert (
        'tagwarden_http_requests_total{method="GET",route="/api/v1/images/{image_id}",'
        'status="404"} 1.0'
    ) in metrics.text
    assert "tagwarden_http_request_duration_seconds_bucket" in metrics.text


async def test_openapi_documents_the_seed_paths(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/images",
        "/api/v1/images/{image_id}/monitoring",
        "/api/v1/images/{image_id}/tags",
        "/api/v1/images/approvals",
        "/api/v1/images/approvals/{request_id}/approve",
        "/api/v1/images/approvals/{request_id}/process",
    ):
        assert path in paths


async def test_health_of_an_unreachable_database_says_only_what_failed(
    tmp_path: Any, unused_tcp_port: int
) -> None:
    # Anyone may call /healthz: the driver's message (host, user, path) must not reach them.
    from tagwarden.app import create_app

    url = f"postgresql://secret-user@127.0.0.1:{unused_tcp_port}/secret-db"
    app = create_app(make_settings(url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tagwarden.test") as c:
        health = await c.get("/healthz")
    await app.state.engine.dispose()
    assert health.status_code == 503
    assert health.json()["database"] == "unreachable"
    assert "secret" not in health.text
    assert str(unused_tcp_port) not in health.text
