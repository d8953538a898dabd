"""Auto-rollout: an activated tag of an image with a rollout template starts its rollout.

Seed 001, "Integration with Rollout System": approved → activated → rollout created
automatically. It runs in the activation's transaction, inside a savepoint: a template that
finds nothing to do (no matching device, devices busy in another rollout) records why in the
audit log and leaves the approval standing, since refusing an approval because a fleet is busy
would be wrong. So does any other failure of this one tag's rollout (a template stored before
today's checks, a tag name no rollout accepts, a bug): the tag's error is the audit entry
``rollout.auto_skipped`` (with the reason and the request), plus a warning in the log, and
the approval, the scan and the other tags go on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.errors import DomainError, failure_reason
from tagwarden.rollouts import service
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.schemas import RolloutTemplate

log = logging.getLogger("tagwarden.rollouts")
ACTOR = "auto-rollout"


async def start(
    session: AsyncSession,
    *,
    template: dict[str, Any],
    image_id: int,
    tag: str,
    approved_by: str,
    now: datetime,
    poll_interval: int,
    request_id: int | None = None,
) -> Rollout | None:
    """Start the rollout ``template`` (the image's stored one) describes for the activated
    ``tag``; None, with the reason in the audit log, when it cannot start."""
    actor = Principal(identity=f"{ACTOR} (approved by {approved_by})", role="approver")
    try:
        async with session.begin_nested():
            # Inside the savepoint too: reading the template and making the tag's request fail
            # for one tag (or one stored template), and must not fail its approval.
            checked = RolloutTemplate.model_validate(template)
            request = checked.request_for(image_id=image_id, tag=tag)
            prepared = await service.prepare(session, request, now=now, poll_interval=poll_interval)
            rollout = await service.create(session, request, prepared, actor)
    except Exception as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise  # the database is gone: nothing here can be recorded, the caller must know
        reason, code = failure_reason(
            exc,
            unexpected_code="auto_rollout_failed",
            invalid=("the rollout template does not fit", "invalid_rollout"),
        )
        log.warning(
            "auto-rollout of image %d tag %r not started: %s",
            image_id,
            tag,
            reason,
            exc_info=not isinstance(exc, DomainError | ValidationError),
        )
        audit.record(
            session,
            actor=ACTOR,
            action="rollout.auto_skipped",
            entity_type="image",
            entity_id=image_id,
            after={"tag": tag, "request_id": request_id, "reason": reason, "code": code},
        )
        return None
    return rollout
