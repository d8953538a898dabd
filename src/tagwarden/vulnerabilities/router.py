"""Clearing a tag's recall (a request's findings are approvals' route: it reads the request)."""

from __future__ import annotations

from fastapi import APIRouter

from tagwarden.auth.deps import Admin, Session
from tagwarden.catalogue.schemas import ImageTagOut
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.vulnerabilities import recall
from tagwarden.vulnerabilities.schemas import UnrecallIn

router = APIRouter(tags=["vulnerabilities"])


@router.post("/api/v1/images/{image_id}/tags/unrecall", responses=error_responses(404))
async def unrecall(
    image_id: IdPath, body: UnrecallIn, session: Session, who: Admin
) -> list[ImageTagOut]:
    """Clear a tag's recall (audited with the notes); its paused rollouts stay paused."""
    rows = await recall.unrecall(session, image_id, body.tag, notes=body.notes, actor=who.identity)
    return [ImageTagOut.of(r) for r in rows]
