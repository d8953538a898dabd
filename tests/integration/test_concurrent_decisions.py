"""Concurrent decisions on one request leave exactly one winner (a conditional UPDATE)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import ImageTag
from tests.factories import add_redis, seed_request


async def test_twenty_concurrent_approve_and_reject_calls_record_exactly_one_decision(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])

    async def decide(i: int) -> httpx.Response:
        action = "approve" if i % 2 == 0 else "reject"
        return await client.post(
            f"/api/v1/images/approvals/{request_id}/{action}",
            json={"notes": f"call {i}"},
            headers=tokens.headers("approver"),
        )

    responses = await asyncio.gather(*(decide(i) for i in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19, [
        r.text for r in responses if r.status_code not in (200, 409)
    ]
    [winner] = [r.json() for r in responses if r.status_code == 200]

    async with sessionmaker() as session:
        request = await session.get(ApprovalRequest, request_id)
        assert request is not None
        assert (request.status, request.notes) == (winner["status"], winner["notes"])
        decisions = await session.scalar(
            select(func.count()).where(
                AuditEntry.entity_type == "approval_request",
                AuditEntry.action.in_(["approval.approved", "approval.rejected"]),
            )
        )
        tag_rows = await session.scalar(select(func.count()).select_from(ImageTag))
    assert decisions == 1
    # Approval activates (auto-processing is on); a rejection must leave nothing behind.
    assert tag_rows == (2 if winner["status"] == "approved" else 0)


async def test_concurrent_processing_of_one_request_activates_once(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"auto_process_approved": False})
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    approved = await client.post(
        f"/api/v1/images/approvals/{request_id}/approve", headers=tokens.headers("admin")
    )
    assert approved.status_code == 200

    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/images/approvals/{request_id}/process", headers=tokens.headers("admin")
            )
            for _ in range(10)
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sum(not r.json()["already_processed"] for r in responses) == 1
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ImageTag)) == 2
