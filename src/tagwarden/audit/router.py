"""Reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from tagwarden.audit import service
from tagwarden.audit.models import AuditEntry
from tagwarden.deps import Session, Viewer
from tagwarden.inputs import TextQuery
from tagwarden.pagination import Page, Paging

router = APIRouter(prefix="/api/v1", tags=["audit"])


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


@router.get("/audit")
async def list_audit(
    session: Session,
    _: Viewer,
    paging: Paging,
    entity_type: TextQuery = None,
    entity_id: TextQuery = None,
    action: TextQuery = None,
    actor: TextQuery = None,
) -> Page[AuditEntryOut]:
    rows, total = await service.list_entries(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        actor=actor,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[AuditEntryOut.of(e) for e in rows], total=total, **paging.model_dump())
