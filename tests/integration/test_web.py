"""The admin pages without a browser: sessions, CSRF, roles and forged posts, on both databases."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import ImageTag
from tagwarden.web.session import COOKIE
from tests.factories import DIGEST, add_redis, seed_request

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, token: str) -> str:
    """Log in as a browser would; returns the CSRF token of the logged-in session."""
    form = await client.get("/login")
    assert form.status_code == 200
    done = await client.post(
        "/login", data={"token": token, "csrf_token": csrf_of(form.text), "next": "/approvals"}
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/approvals"
    page = await client.get("/approvals")
    assert page.status_code == 200
    return csrf_of(page.text)


async def pending_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(ApprovalRequest.status == "pending")
        )
    return int(count or 0)


async def test_pages_redirect_to_login_without_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/", "/approvals", "/approvals/history", "/images", "/monitor", "/audit"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
    assert (await client.get("/login")).status_code == 200
    assert (await client.get("/static/app.css")).status_code == 200


async def test_login_sets_a_hardened_cookie_and_a_wrong_token_is_refused(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    form = await client.get("/login")
    wrong = await client.post(
        "/login", data={"token": "tw_wrong", "csrf_token": csrf_of(form.text)}
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    right = await client.post(
        "/login", data={"token": tokens.viewer, "csrf_token": csrf_of(wrong.text)}
    )
    assert right.status_code == 303
    cookie = next(v for k, v in right.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie  # plain http here; https gets Secure
    assert tokens.viewer not in cookie  # the token itself never travels in the cookie


async def test_login_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    await client.get("/login")
    response = await client.post("/login", data={"token": tokens.admin})
    assert response.status_code == 403
    assert (await client.get("/approvals")).status_code == 303


async def test_a_post_without_or_with_a_wrong_csrf_token_changes_nothing(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    await login(client, tokens.approver)
    for data in (
        {"decision": "approve"},
        {"decision": "approve", "csrf_token": "0" * 64},
    ):
        response = await client.post(f"/approvals/{request_id}/decide", data=data)
        assert response.status_code == 403, response.text
        assert "CSRF" in response.text
    assert await pending_count(sessionmaker) == 1


async def test_a_csrf_token_of_another_session_is_refused(
    app: Any, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://tw") as admin,
        httpx.AsyncClient(transport=transport, base_url="http://tw") as approver,
    ):
        image = await add_redis(admin, tokens.headers("admin"))
        request_id = await seed_request(sessionmaker, image["id"])
        other = await login(admin, tokens.admin)
        await login(approver, tokens.approver)
        response = await approver.post(
            f"/approvals/{request_id}/decide", data={"decision": "approve", "csrf_token": other}
        )
    assert response.status_code == 403
    assert await pending_count(sessionmaker) == 1


async def test_viewer_sees_no_decision_buttons_and_a_forged_post_is_refused(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    csrf = await login(client, tokens.viewer)
    page = await client.get("/approvals")
    assert "redis:7.2.5-alpine" in page.text
    assert "Approve</button>" not in page.text
    assert "decide" not in page.text
    assert 'name="ids"' not in page.text
    forged = await client.post(
        f"/approvals/{request_id}/decide", data={"decision": "approve", "csrf_token": csrf}
    )
    assert forged.status_code == 403
    assert "approver role" in forged.text
    bulk = await client.post(
        "/approvals/bulk", data={"action": "approve", "ids": [request_id], "csrf_token": csrf}
    )
    assert bulk.status_code == 403
    assert await pending_count(sessionmaker) == 1


@pytest.mark.parametrize(
    ("role", "path", "data", "expected"),
    [
        ("approver", "/images/1/settings", {"tag_policy": "all"}, 403),
        ("approver", "/images/1/monitoring", {"watch": "on"}, 403),
        ("viewer", "/images/1/check", {}, 403),
        ("viewer", "/images/1/tags/flag", {"tag": "7", "flag": "deprecated", "value": "true"}, 403),
        ("viewer", "/monitor/trigger", {}, 403),
        ("admin", "/images/1/settings", {"tag_policy": "all"}, 303),
    ],
)
async def test_the_server_checks_the_role_of_every_form(
    client: httpx.AsyncClient,
    tokens: Any,
    role: str,
    path: str,
    data: dict[str, str],
    expected: int,
) -> None:
    await add_redis(client, tokens.headers("admin"))
    csrf = await login(client, getattr(tokens, role))
    response = await client.post(path, data={**data, "csrf_token": csrf})
    assert response.status_code == expected, response.text


async def test_approve_with_notes_activates_and_the_tag_shows_under_tags(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    csrf = await login(client, tokens.approver)
    page = (await client.get("/approvals")).text
    assert f'title="{DIGEST}"' in page  # the full digest on hover
    assert "auto-detected" in page
    decided = await client.post(
        f"/approvals/{request_id}/decide",
        data={"decision": "approve", "notes": "Security patches included", "csrf_token": csrf},
        headers={"referer": "http://tagwarden.test/approvals"},
    )
    assert decided.status_code == 303
    assert decided.headers["location"] == "/approvals"
    after = await client.get("/approvals")
    assert "Approved redis:7.2.5-alpine" in after.text  # the flash message
    detail = await client.get(f"/images/{image['id']}")
    assert 'data-tag="7.2.5-alpine"' in detail.text
    async with sessionmaker() as session:
        request = await session.get(ApprovalRequest, request_id)
        archs = (await session.scalars(select(ImageTag.architecture))).all()
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "approval.approved")
        )
    assert request is not None
    assert (request.reviewed_by, request.notes) == (
        "approver@example.com",
        "Security patches included",
    )
    assert sorted(archs) == ["amd64", "arm64"]
    assert audited == 1
    history = await client.get("/approvals/history")
    assert "Security patches included" in history.text


async def test_bulk_reports_each_outcome_and_a_repeated_decision_is_a_conflict(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    first = await seed_request(sessionmaker, image["id"], request_id=1, tag="7.2.4")
    second = await seed_request(sessionmaker, image["id"], request_id=2, tag="7.2.5")
    csrf = await login(client, tokens.approver)
    done = await client.post(
        "/approvals/bulk",
        data={"action": "reject", "ids": [first, second], "notes": "too old", "csrf_token": csrf},
    )
    assert done.status_code == 303
    assert "2 requests rejected" in (await client.get("/approvals")).text
    again = await client.post(
        f"/approvals/{first}/decide", data={"decision": "approve", "csrf_token": csrf}
    )
    assert again.status_code == 303  # back to the form, with the reason
    assert "already rejected" in (await client.get("/approvals")).text
    assert await pending_count(sessionmaker) == 0


async def test_a_revoked_token_ends_its_session_and_logout_clears_it(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    csrf = await login(client, tokens.approver)
    listed = await client.get("/api/v1/tokens", headers=tokens.headers("admin"))
    approver_id = next(t["id"] for t in listed.json() if t["role"] == "approver")
    await client.delete(f"/api/v1/tokens/{approver_id}", headers=tokens.headers("admin"))
    assert (await client.get("/approvals")).status_code == 303
    csrf = await login(client, tokens.viewer)
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert (await client.get("/approvals")).status_code == 303


async def test_a_tampered_cookie_is_no_session(client: httpx.AsyncClient, tokens: Any) -> None:
    await login(client, tokens.viewer)
    value = client.cookies.get(COOKIE)
    assert value
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert (await client.get("/approvals")).status_code == 303


async def test_every_page_renders_for_every_role(client: httpx.AsyncClient, tokens: Any) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    for role in ("viewer", "approver", "admin"):
        await login(client, getattr(tokens, role))
        for path in (
            "/approvals",
            "/approvals?status=all",
            "/approvals/history",
            "/images",
            f"/images/{image['id']}",
            "/rollouts",
            "/devices",
            "/monitor",
            "/audit",
            "/audit?action=image.created",
        ):
            response = await client.get(path)
            assert response.status_code == 200, f"{role} {path}: {response.text[:300]}"
            assert response.headers["cache-control"] == "no-store"
    missing = await client.get("/images/999")
    assert missing.status_code == 404


async def test_login_next_never_leaves_the_site(client: httpx.AsyncClient, tokens: Any) -> None:
    form = await client.get("/login?next=//evil.example/x")
    assert "//evil.example" not in form.text
    done = await client.post(
        "/login",
        data={"token": tokens.viewer, "csrf_token": csrf_of(form.text), "next": "https://evil.x"},
    )
    assert done.headers["location"] == "/approvals"
