"""Monitor control endpoints, in seed 001's exact response shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tagwarden.auth.deps import Approver, Session, Viewer
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.monitor import service
from tagwarden.monitor.deps import Monitor

router = APIRouter(prefix="/api/v1/images", tags=["monitor"])


class CheckOut(BaseModel):
    message: str
    image_name: str
    result: dict[str, Any]


class TriggerOut(BaseModel):
    message: str
    images_checked: int
    requests_created: int
    errors: int
    results: list[dict[str, Any]]


@router.get("/monitor/status")
async def monitor_status(monitor: Monitor, _: Viewer) -> dict[str, Any]:
    return monitor.status()


@router.post("/monitor/trigger")
async def trigger_all(monitor: Monitor, _: Approver) -> TriggerOut:
    summary = await monitor.run_once(force=True)
    return TriggerOut(
        message="Manual check triggered successfully",
        images_checked=summary.images_checked,
        requests_created=summary.requests_created,
        errors=summary.errors,
        results=[r.as_dict() for r in summary.results],
    )


@router.post("/{image_id}/check", responses=error_responses(409))
async def check_image(
    image_id: IdPath, monitor: Monitor, session: Session, _: Approver
) -> CheckOut:
    image = await service.checkable_image(session, image_id)
    result = await monitor.check(image)
    return CheckOut(
        message="Image check triggered successfully",
        image_name=image.image_name,
        result=result.as_dict(),
    )
