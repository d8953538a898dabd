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
from collections.abc import Mapping
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
# The app's sessions carry the configured poll interval (see tagwarden.db.make_sessionmaker);
# this is Settings' own default, for sessions made without it.
DEFAULT_POLL_INTERVAL = 60


async def after_activation(
    session: AsyncSession,
    *,
    image_id: int,
    tag: str,
    template: Mapping[str, Any] | None,
    approved_by: str,
    now: datetime,
    request_id: int | None = None,
) -> Rollout | None:
    """Start the rollout ``template`` (the image policy's stored ``rollout_template``, as the
    caller read it) describes for ``tag``; None when there is no template or it did not start."""
    if not template:
        return None
    poll_interval = int(session.info.get("device_poll_interval_seconds", DEFAULT_POLL_INTERVAL))
    actor = Principal(identity=f"{ACTOR} (approved by {approved_by})", role="approver")
    try:
        async with session.begin_nested():
            # Inside the savepoint too: reading the template and making the tag's request fail
            # for one tag (or one stored template), and must not fail its approval.
            request = RolloutTemplate.model_validate(template).request_for(
                image_id=image_id, tag=tag
            )
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
