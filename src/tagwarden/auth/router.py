"""API token management (admins), who-am-I for any token, and reading the audit log.

The audit log's reader is here rather than in ``audit``: every part, ``auth`` included, writes
the log, so ``audit`` sits below them all and cannot import the request's credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict

from tagwarden.audit import service as audit
from tagwarden.audit.models import AuditEntry
from tagwarden.auth import service
from tagwarden.auth.deps import Admin, Session, Viewer
from tagwarden.auth.schemas import TokenCreate, TokenCreated, TokenOut
from tagwarden.inputs import IdPath, TextQuery
from tagwarden.pagination import Page, Paging

router = APIRouter(prefix="/api/v1", tags=["auth"])
audit_router = APIRouter(prefix="/api/v1", tags=["audit"])


class WhoAmI(BaseModel):
    identity: str
    role: str


@router.get("/auth/me")
async def whoami(who: Viewer) -> WhoAmI:
    return WhoAmI(identity=who.identity, role=who.role)


@router.get("/tokens")
async def list_tokens(session: Session, _: Admin) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await service.list_tokens(session)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, session: Session, who: Admin) -> TokenCreated:
    token, raw = await service.create_token(
        session, name=body.name, role=body.role, identity=body.identity, actor=who.identity
    )
    return TokenCreated(**TokenOut.of(token).model_dump(), token=raw)


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: IdPath, session: Session, who: Admin) -> TokenOut:
    return TokenOut.of(await service.revoke_token(session, token_id, actor=who.identity))


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls.model_validate(e)


@audit_router.get("/audit")
async def list_audit(
    session: Session,
    _: Viewer,
    paging: Paging,
    entity_type: TextQuery = None,
    entity_id: TextQuery = None,
    action: TextQuery = None,
    actor: TextQuery = None,
) -> Page[AuditEntryOut]:
    rows, total = await audit.list_entries(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        actor=actor,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[AuditEntryOut.of(e) for e in rows], total=total, **paging.model_dump())
