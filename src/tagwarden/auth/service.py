"""API tokens: issue, authenticate, list, revoke."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.models import ROLES, ApiToken, WebSessionRow
from tagwarden.db import utcnow
from tagwarden.errors import InvalidInput, NotFound

TOKEN_PREFIX = "tw_"  # noqa: S105 - a public marker that tells tokens apart, not a secret
# Recording every use would turn each read into a write; a few minutes' precision is enough.
LAST_USED_PRECISION = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the identity recorded on decisions, and what the role allows."""

    identity: str
    role: str
    token_id: int | None = None

    def has(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


SYSTEM = Principal(identity="system", role="admin")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def create_token(
    session: AsyncSession, *, name: str, role: str, identity: str, actor: str
) -> tuple[ApiToken, str]:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip() or not identity.strip():
        raise InvalidInput("name and identity must not be empty")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name.strip(),
        role=role,
        identity=identity.strip(),
        token_hash=hash_token(raw),
        token_prefix=raw[:10],
        created_by=actor,
    )
    session.add(token)
    await session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.created",
        entity_type="api_token",
        entity_id=token.id,
        after={"name": token.name, "role": role, "identity": token.identity},
    )
    return token, raw


async def authenticate(session: AsyncSession, raw: str) -> Principal | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(raw), ApiToken.revoked_at.is_(None)
        )
    )
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )
    return Principal(identity=token.identity, role=token.role, token_id=token.id)


async def start_web_session(
    session: AsyncSession, sid: str, token_id: int, *, hours: int, now: datetime | None = None
) -> None:
    """Record a signed-in admin-UI session; sessions already expired are purged on the way."""
    now = now or utcnow()
    await session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    session.add(
        WebSessionRow(
            sid=sid, token_id=token_id, created_at=now, expires_at=now + timedelta(hours=hours)
        )
    )
    await session.flush()


async def principal_for_session(
    session: AsyncSession, sid: str, token_id: int, *, now: datetime | None = None
) -> Principal | None:
    """The caller behind an admin-UI session, in one query: None once it was logged out,
    expired, or its token revoked. The session's token must be the one its cookie names."""
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.identity, ApiToken.role)
            .join(WebSessionRow, WebSessionRow.token_id == ApiToken.id)
            .where(
                WebSessionRow.sid == sid,
                WebSessionRow.token_id == token_id,
                WebSessionRow.expires_at > (now or utcnow()),
                ApiToken.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(identity=row.identity, role=row.role, token_id=row.id)


async def end_web_session(session: AsyncSession, sid: str) -> None:
    await session.execute(delete(WebSessionRow).where(WebSessionRow.sid == sid))


async def list_tokens(session: AsyncSession) -> Sequence[ApiToken]:
    return (await session.scalars(select(ApiToken).order_by(ApiToken.id))).all()


async def revoke_token(session: AsyncSession, token_id: int, *, actor: str) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"API token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        # Its admin-UI sessions end with it (they are also refused for the revoked token).
        await session.execute(delete(WebSessionRow).where(WebSessionRow.token_id == token.id))
        audit.record(
            session,
            actor=actor,
            action="token.revoked",
            entity_type="api_token",
            entity_id=token.id,
            before={"name": token.name, "role": token.role, "identity": token.identity},
        )
    return token
