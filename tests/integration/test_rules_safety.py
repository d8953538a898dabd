"""Rules decide only what a registry said, and never leave a request half-decided."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.service import NewRequest, create_request
from tagwarden.catalogue.models import ImageTag
from tagwarden.db import utcnow
from tagwarden.rules.service import judge_new
from tests.factories import DIGEST, add_redis


async def _rule(client: httpx.AsyncClient, tokens: Any, image_id: int, **rule: Any) -> None:
    response = await client.post(
        f"/api/v1/images/{image_id}/rules", json=rule, headers=tokens.headers("admin")
    )
    assert response.status_code == 201, response.text


async def test_a_manual_request_with_a_typed_in_old_date_is_not_approved_by_a_rule(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    policy = await client.put(
        f"/api/v1/images/{image['id']}/policy",
        json={"required_approvals": 2},
        headers=tokens.headers("admin"),
    )
    assert policy.status_code == 200, policy.text
    await _rule(client, tokens, image["id"], name="7.x", kind="range", pattern=">=7.0.0, <8",
                min_age_hours=72)  # fmt: skip

    created = await client.post(
        "/api/v1/images/approvals",
        json={
            "image_id": image["id"],
            "tag_name": "7.9.9",
            "metadata": {
                "digest": "sha256:" + "e" * 64,
                "architectures": ["amd64"],
                "last_updated": "2001-01-01T00:00:00Z",
            },
        },
        headers=tokens.headers("approver"),
    )

    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ImageTag)) == 0


async def test_a_rule_approval_that_cannot_activate_leaves_the_request_pending(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    await _rule(client, tokens, image["id"], name="all", kind="regex", pattern=".*")
    async with sessionmaker() as session, session.begin():
        # What the monitor records for a tag whose only manifests are attestations.
        draft = NewRequest(
            image["id"],
            "redis",
            "7.4.0",
            {"digest": DIGEST, "architectures": [], "source": "image_monitor"},
        )
        request = await create_request(session, draft, actor="image_monitor")
        request_id = request.id
        # The monitor's next step: the image's rules judge what was just created.
        then = AfterApproval(activate=True, poll_interval_seconds=60)
        await judge_new(session, [(request_id, draft)], now=utcnow(), then=then)

    async with sessionmaker() as session:
        stored = await session.get(ApprovalRequest, request_id)
        assert stored is not None
        assert (stored.status, stored.reviewed_by, stored.processed_at) == ("pending", None, None)
