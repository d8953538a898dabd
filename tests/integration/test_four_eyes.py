"""Four-eyes: a request needs `required_approvals` distinct approvers; one reject decides."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalDecision
from tagwarden.auth import service as auth
from tagwarden.catalogue.models import ImageTag
from tests.factories import add_redis, seed_request


async def _approvers(
    sessionmaker: async_sessionmaker[AsyncSession], n: int
) -> list[dict[str, str]]:
    headers = []
    async with sessionmaker() as session, session.begin():
        for i in range(n):
            _, raw = await auth.create_token(
                session, name=f"a{i}", role="approver", identity=f"a{i}@example.com", actor="t"
            )
            headers.append({"Authorization": f"Bearer {raw}"})
    return headers


async def _require(client: httpx.AsyncClient, tokens: Any, image_id: int, n: int) -> None:
    response = await client.put(
        f"/api/v1/images/{image_id}/policy",
        json={"required_approvals": n},
        headers=tokens.headers("admin"),
    )
    assert response.json()["required_approvals"] == n


async def test_two_distinct_approvers_are_needed_and_one_cannot_count_twice(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await _require(client, tokens, image["id"], 2)
    request_id = await seed_request(sessionmaker, image["id"])
    url = f"/api/v1/images/approvals/{request_id}"

    first = await client.post(f"{url}/approve", headers=tokens.headers("approver"))
    assert (first.status_code, first.json()["status"]) == (200, "pending")
    again = await client.post(f"{url}/approve", headers=tokens.headers("approver"))
    assert (again.status_code, again.json()["code"]) == (409, "already_approved_by_you")
    second = await client.post(f"{url}/approve", headers=tokens.headers("admin"))
    assert second.json()["status"] == "approved"
    assert second.json()["reviewed_by"] == "admin@example.com"
    assert len(second.json()["image_tags"]) == 2  # activated once the count is reached

    decisions = (await client.get(f"{url}/decisions", headers=tokens.headers("viewer"))).json()
    assert (decisions["approvals"], decisions["required_approvals"]) == (2, 2)
    assert [d["identity"] for d in decisions["decisions"]] == [
        "approver@example.com",
        "admin@example.com",
    ]
    late = await client.post(f"{url}/reject", headers=tokens.headers("viewer"))
    assert late.status_code == 403


async def test_a_single_reject_decides_even_after_an_approval(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await _require(client, tokens, image["id"], 3)
    request_id = await seed_request(sessionmaker, image["id"])
    url = f"/api/v1/images/approvals/{request_id}"
    await client.post(f"{url}/approve", headers=tokens.headers("approver"))
    rejected = await client.post(
        f"{url}/reject", json={"notes": "not this one"}, headers=tokens.headers("admin")
    )
    assert rejected.json()["status"] == "rejected"
    after = await client.post(f"{url}/approve", headers=tokens.headers("admin"))
    assert after.json()["code"] == "already_decided"


async def test_concurrent_approvals_by_distinct_identities_are_all_counted_once(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await _require(client, tokens, image["id"], 3)
    request_id = await seed_request(sessionmaker, image["id"])
    approvers = await _approvers(sessionmaker, 6)
    url = f"/api/v1/images/approvals/{request_id}/approve"

    responses = await asyncio.gather(*(client.post(url, headers=h) for h in approvers + approvers))

    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409}, [r.text for r in responses]
    statuses = [r.json().get("status") for r in responses if r.status_code == 200]
    assert statuses.count("approved") == 1
    assert statuses.count("pending") == 2  # the two approvals before the third
    async with sessionmaker() as session:
        recorded = await session.scalar(select(func.count()).select_from(ApprovalDecision))
        tag_rows = await session.scalar(select(func.count()).select_from(ImageTag))
    assert recorded == 3  # the rest arrived after the decision and were refused
    assert tag_rows == 2
