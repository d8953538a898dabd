"""Signing keys: registered by admins, audited, a bad PEM refused, on both databases."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tests.signing import new_key, public_pem

URL = "/api/v1/signing-keys"


async def test_an_admin_registers_lists_and_deletes_keys_and_each_change_is_audited(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pem = public_pem(new_key())
    added = await client.post(
        URL, json={"name": "release", "public_key": pem}, headers=tokens.headers("admin")
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["name"], body["algorithm"], body["created_by"]) == (
        "release",
        "ecdsa-p256",
        "admin@example.com",
    )
    assert len(body["fingerprint"]) == 64

    listed = await client.get(URL, headers=tokens.headers("viewer"))
    assert [k["name"] for k in listed.json()] == ["release"]
    again = await client.post(
        URL, json={"name": "release", "public_key": pem}, headers=tokens.headers("admin")
    )
    assert again.status_code == 409

    deleted = await client.delete(f"{URL}/release", headers=tokens.headers("admin"))
    assert deleted.status_code == 200
    assert (await client.get(URL, headers=tokens.headers("viewer"))).json() == []
    gone = await client.delete(f"{URL}/release", headers=tokens.headers("admin"))
    assert gone.status_code == 404

    async with sessionmaker() as session:
        actions = (
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_type == "signing_key")
                .order_by(AuditEntry.id)
            )
        ).all()
    assert actions == ["signing_key.added", "signing_key.deleted"]


async def test_a_bad_pem_is_a_422_and_only_admins_register_keys(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    bad = await client.post(
        URL,
        json={"name": "broken", "public_key": "-----BEGIN PUBLIC KEY-----\nxx\n"},
        headers=tokens.headers("admin"),
    )
    assert bad.status_code == 422
    assert "PEM" in bad.json()["detail"]
    refused = await client.post(
        URL,
        json={"name": "mine", "public_key": public_pem(new_key())},
        headers=tokens.headers("approver"),
    )
    assert refused.status_code == 403
    assert (await client.get(URL, headers=tokens.headers("viewer"))).json() == []
