"""Sessions that cannot be forged or replayed, throttled credential guesses, the pages'
security headers and the monitor page after a scan, on both databases.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tagwarden.app import create_app
from tagwarden.auth.models import ServerSecret, WebSessionRow
from tagwarden.auth.secret import GENERATED, SESSION_SECRET
from tagwarden.cli.main import app as cli
from tagwarden.config import Settings, get_settings
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.web.headers import CONTENT_SECURITY_POLICY
from tagwarden.web.session import COOKIE
from tests.factories import add_redis, make_settings, seed_request
from tests.integration.test_web import csrf_of, login, pending_count

OLD_PUBLIC_KEY = "dev-insecure-secret-key-change-me"


def unkeyed(database_url: str, **extra: Any) -> Settings:
    """The suite's settings without TAGWARDEN_SECRET_KEY (as a default install runs)."""
    return make_settings(database_url, **{"secret_key": None, **extra})


@asynccontextmanager
async def serving(app: FastAPI, *, lifespan: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tw") as client:
        if lifespan:
            async with app.router.lifespan_context(app):
                yield client
        else:
            yield client


async def stored_secrets(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(ServerSecret.value))).all())


# -- forged and replayed sessions


async def test_a_cookie_forged_with_the_old_public_key_is_refused(
    database_url: str, tokens: Any
) -> None:
    async with serving(create_app(unkeyed(database_url))) as client:
        me = await client.get("/api/v1/auth/me", headers=tokens.headers("admin"))
        assert me.status_code == 200
        listed = await client.get("/api/v1/tokens", headers=tokens.headers("admin"))
        admin_id = next(t["id"] for t in listed.json() if t["role"] == "admin")
        assert admin_id == 1
        # Exactly as web/session.py signed cookies before sessions were hardened.
        forged = URLSafeTimedSerializer(OLD_PUBLIC_KEY, salt="tagwarden.web.session").dumps(
            {"sid": "forged-session-id", "tid": 1, "idn": "admin@example.com", "role": "admin"}
        )
        client.cookies.set(COOKIE, forged)
        for path in ("/approvals", "/images", "/audit"):
            response = await client.get(path)
            assert response.status_code == 303, f"{path}: a forged cookie was accepted"
            assert response.headers["location"].startswith("/login")


async def test_the_generated_secret_is_stored_shared_and_survives_a_restart(
    database_url: str,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tagwarden.auth")
    assert await stored_secrets(sessionmaker) == []
    first, second = create_app(unkeyed(database_url)), create_app(unkeyed(database_url))
    async with serving(first) as one, serving(second) as two:
        [secret] = await stored_secrets(sessionmaker)
        assert len(secret) >= 48
        assert OLD_PUBLIC_KEY not in secret
        # Signed in on one replica, the session works on the other.
        await login(one, tokens.approver)
        two.cookies.set(COOKIE, one.cookies[COOKIE])
        assert (await two.get("/approvals")).status_code == 200
    # A restart reads the same secret: the session signed before it still works after it.
    async with serving(create_app(unkeyed(database_url))) as again:
        again.cookies.set(COOKIE, one.cookies[COOKIE])
        assert (await again.get("/approvals")).status_code == 200
    assert await stored_secrets(sessionmaker) == [secret]
    lines = [r for r in caplog.records if r.getMessage() == GENERATED]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]


async def test_pages_work_without_a_lifespan_and_a_set_key_stores_nothing(
    database_url: str, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Served without its lifespan (as some tests and embedders do), the app makes it on first use.
    async with serving(create_app(unkeyed(database_url)), lifespan=False) as client:
        await login(client, tokens.viewer)
    async with sessionmaker() as session:
        names = (await session.scalars(select(ServerSecret.name))).all()
    assert names == [SESSION_SECRET]
    async with sessionmaker() as session, session.begin():
        await session.execute(ServerSecret.__table__.delete())
    keyed = unkeyed(database_url, secret_key="an-operator-chosen-key-0123")
    async with serving(create_app(keyed)) as client:
        await login(client, tokens.viewer)
    assert await stored_secrets(sessionmaker) == []


def test_production_without_a_secret_key_does_not_start(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGWARDEN_DATABASE_URL", database_url)
    monkeypatch.setenv("TAGWARDEN_ENVIRONMENT", "production")
    monkeypatch.delenv("TAGWARDEN_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--no-migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "TAGWARDEN_SECRET_KEY" in result.output
    chosen = Settings(environment="production", secret_key="an-operator-chosen-key-0123")
    assert chosen.secret_key is not None


async def test_a_cookie_captured_before_logout_is_refused_after_it(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    csrf = await login(client, tokens.approver)
    captured = client.cookies[COOKIE]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebSessionRow)) == 1
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebSessionRow)) == 0

    client.cookies.set(COOKIE, captured)
    page = await client.get("/approvals")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    replayed = await client.post(
        f"/approvals/{request_id}/decide", data={"decision": "approve", "csrf_token": csrf}
    )
    # The session is gone on the server: sent to sign in, nothing decided.
    assert replayed.status_code == 303, replayed.text
    assert replayed.headers["location"].startswith("/login")
    assert await pending_count(sessionmaker) == 1


async def test_a_revoked_token_ends_its_sessions_on_the_server(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, tokens.approver)
    listed = await client.get("/api/v1/tokens", headers=tokens.headers("admin"))
    approver_id = next(t["id"] for t in listed.json() if t["role"] == "approver")
    await client.delete(f"/api/v1/tokens/{approver_id}", headers=tokens.headers("admin"))
    assert (await client.get("/approvals")).status_code == 303
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebSessionRow)) == 0


# -- throttled guesses


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["code"] == "too_many_failures"
    assert response.json()["detail"]


async def test_bad_bearer_tokens_are_throttled_and_a_valid_one_is_not(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    for attempt in range(10):
        wrong = await client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer tw_wrong{attempt}"}
        )
        assert wrong.status_code == 401, attempt
    assert_throttled(
        await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer tw_wrong"})
    )
    assert (
        await client.get("/api/v1/auth/me", headers=tokens.headers("viewer"))
    ).status_code == 200
    assert (await client.get("/api/v1/images", headers=tokens.headers("admin"))).status_code == 200


async def test_bad_device_keys_are_throttled_and_a_valid_one_is_not(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    created = await client.post(
        "/api/v1/devices",
        json={"uuid": "d1", "name": "shop 1", "architecture": "amd64"},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    key = created.json()["device_key"]
    for attempt in range(10):
        wrong = await client.get(
            "/api/v1/device/d1/state", headers={"Authorization": f"Bearer twd_wrong{attempt}"}
        )
        assert wrong.status_code == 401, attempt
    assert_throttled(
        await client.get("/api/v1/device/d1/state", headers={"Authorization": "Bearer twd_x"})
    )
    assert_throttled(
        await client.patch(
            "/api/v1/device/d1/state", json={"apps": {}}, headers={"Authorization": "Bearer twd_x"}
        )
    )
    right = {"Authorization": f"Bearer {key}"}
    first = await client.get("/api/v1/device/d1/state", headers=right)
    assert first.status_code == 200, first.text
    again = await client.get(
        "/api/v1/device/d1/state", headers=right | {"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


async def test_failed_sign_ins_are_throttled_with_a_readable_page_and_a_valid_one_is_not(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    form = await client.get("/login")
    csrf = csrf_of(form.text)
    for attempt in range(10):
        wrong = await client.post("/login", data={"token": f"tw_no{attempt}", "csrf_token": csrf})
        assert wrong.status_code == 401, attempt
    refused = await client.post("/login", data={"token": "tw_no", "csrf_token": csrf})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many failed sign-ins" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    right = await client.post("/login", data={"token": tokens.viewer, "csrf_token": csrf})
    assert right.status_code == 303
    assert right.headers["location"] == "/approvals"


# -- security headers and the monitor page


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


async def test_admin_pages_send_security_headers(client: httpx.AsyncClient, tokens: Any) -> None:
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert_security_headers(await client.get("/login"))
    assert_security_headers(await client.get("/approvals"))  # the redirect to /login
    await login(client, tokens.admin)
    for path in ("/approvals", "/images", "/rollouts", "/devices", "/monitor", "/audit"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        assert 'style="' not in response.text, path
        assert "<script>" not in response.text, path
    assert_security_headers(await client.get("/static/app.css"))


async def test_the_monitor_page_renders_after_a_scan(database_url: str, tokens: Any) -> None:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    fake.add_repository("library/redis", 3, platforms=["linux/amd64"])
    configured = unkeyed(database_url, dockerhub_api_url="http://hub.fake")
    app = create_app(configured, registry_transport=fake.transport())
    app.state.monitor.state = RegistryState(clock=clock)
    async with serving(app) as client:
        added = await client.post(
            "/api/v1/images",
            json={"image_name": "redis", "namespace": "library", "watch_for_updates": True},
            headers=tokens.headers("admin"),
        )
        assert added.status_code == 201, added.text
        summary = await app.state.monitor.run_once(force=True)
        assert summary.images_checked == 1
        for role in ("viewer", "approver"):
            await login(client, getattr(tokens, role))
            response = await client.get("/monitor")
            assert response.status_code == 200, response.text[:500]
            assert "1 images checked" in response.text
            assert 'href="/images/' in response.text
        # An approver's "check all now" lands on the same page, after a second scan.
        trigger = await client.post("/monitor/trigger", data={"csrf_token": csrf_of(response.text)})
        assert trigger.status_code == 303
        assert (await client.get("/monitor")).status_code == 200
