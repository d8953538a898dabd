"""A request's vulnerability findings, and clearing a tag's recall."""

from __future__ import annotations

from fastapi import APIRouter

from tagwarden.auth.deps import Admin, Session, Viewer
from tagwarden.catalogue.schemas import ImageTagOut
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.vulnerabilities import recall, service
from tagwarden.vulnerabilities.schemas import FindingOut, UnrecallIn

router = APIRouter(tags=["vulnerabilities"])


@router.get("/api/v1/images/approvals/{request_id}/vulnerabilities", responses=error_responses(404))
async def list_findings(request_id: IdPath, session: Session, _: Viewer) -> list[FindingOut]:
    """The findings of the request's digest (every platform's SBOM), as of the last match."""
    found = await service.request_findings(session, request_id)
    return [FindingOut.model_validate(f) for f in found]


@router.post("/api/v1/images/{image_id}/tags/unrecall", responses=error_responses(404))
async def unrecall(
    image_id: IdPath, body: UnrecallIn, session: Session, who: Admin
) -> list[ImageTagOut]:
    """Clear a tag's recall (audited with the notes); its paused rollouts stay paused."""
    rows = await recall.unrecall(session, image_id, body.tag, notes=body.notes, actor=who.identity)
    return [ImageTagOut.of(r) for r in rows]
