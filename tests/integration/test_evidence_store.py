"""Evidence stored once per (image, digest), shown with the request; the image's evidence policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.evidence import service as evidence
from tagwarden.evidence.models import DigestEvidence
from tagwarden.evidence.schemas import SignatureEvidence, SignatureStatus
from tests.factories import DIGEST, add_redis, seed_request


async def test_a_request_shows_its_digests_evidence_and_a_store_replaces_it(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    url = f"/api/v1/images/approvals/{request_id}"

    unchecked = await client.get(url, headers=tokens.headers("viewer"))
    assert unchecked.json()["evidence"] == {
        "signature": None,
        "size": None,
        "vulnerabilities": None,
    }

    when = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    async with sessionmaker() as session, session.begin():
        await evidence.store_signature(
            session,
            image["id"],
            DIGEST,
            SignatureEvidence(status=SignatureStatus.UNSIGNED, checked_at=when),
        )
        await evidence.store_size(session, image["id"], DIGEST, {"platforms": {"amd64": 10}})
    async with sessionmaker() as session, session.begin():
        await evidence.store_signature(
            session,
            image["id"],
            DIGEST,
            SignatureEvidence(
                status=SignatureStatus.VERIFIED,
                signers=["release"],
                signed_digest=DIGEST,
                signed="index",
                checked_at=when,
            ),
        )

    shown = (await client.get(url, headers=tokens.headers("viewer"))).json()["evidence"]
    assert shown["signature"]["status"] == "verified"
    assert shown["signature"]["signers"] == ["release"]
    assert shown["signature"]["signed"] == "index"
    assert shown["size"] == {"platforms": {"amd64": 10}}
    listed = await client.get("/api/v1/images/approvals", headers=tokens.headers("viewer"))
    assert listed.json()["items"][0]["evidence"] == shown
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(DigestEvidence)) == 1


async def test_the_policy_takes_signature_and_size_checks_and_null_turns_them_off(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    url = f"/api/v1/images/{image['id']}/policy"
    default = (await client.get(url, headers=tokens.headers("viewer"))).json()
    assert default["signature"] == {"mode": "off", "keys": [], "min_signers": 1}
    assert default["size"]["mode"] == "off"

    body = {
        "signature": {"mode": "enforce", "keys": [], "min_signers": 1},
        "size": {"mode": "warn", "max_growth_percent": 10.0},
    }
    put = await client.put(url, json=body, headers=tokens.headers("admin"))
    assert put.status_code == 200, put.text
    assert put.json()["signature"]["mode"] == "enforce"
    assert put.json()["size"]["max_growth_percent"] == 10.0
    assert put.json()["required_approvals"] == 1

    bad = await client.put(
        url, json={"signature": {"mode": "sometimes"}}, headers=tokens.headers("admin")
    )
    assert bad.status_code == 422

    off = await client.put(url, json={"signature": None}, headers=tokens.headers("admin"))
    assert off.json()["signature"]["mode"] == "off"
    assert off.json()["size"]["mode"] == "warn"
