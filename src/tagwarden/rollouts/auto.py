"""Auto-rollout: an activated tag of an image with a rollout template starts its rollout.

Seed 001, "Integration with Rollout System": approved → activated → rollout created
automatically. It runs in the activation's transaction, inside a savepoint: a template that
finds nothing to do (no matching device, devices busy in another rollout) records why in the
audit log and leaves the approval standing, since refusing an approval because a fleet is busy
would be wrong.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.errors import DomainError
from tagwarden.rollouts import service
from tagwarden.rollouts.models import Rollout
from tagwarden.rules.models import ImagePolicy
from tagwarden.rules.schemas import RolloutTemplate

ACTOR = "auto-rollout"
# The app's sessions carry the configured poll interval (see tagwarden.db.make_sessionmaker);
# this is Settings' own default, for sessions made without it.
DEFAULT_POLL_INTERVAL = 60


async def after_activation(
    session: AsyncSession, *, image_id: int, tag: str, approved_by: str, now: datetime
) -> Rollout | None:
    policy = await session.get(ImagePolicy, image_id)
    if policy is None or not policy.rollout_template:
        return None
    template = RolloutTemplate.model_validate(policy.rollout_template)
    request = template.request_for(image_id=image_id, tag=tag)
    poll_interval = int(session.info.get("device_poll_interval_seconds", DEFAULT_POLL_INTERVAL))
    actor = Principal(identity=f"{ACTOR} (approved by {approved_by})", role="approver")
    try:
        async with session.begin_nested():
            prepared = await service.prepare(session, request, now=now, poll_interval=poll_interval)
            rollout = await service.create(session, request, prepared, actor)
    except DomainError as exc:
        audit.record(
            session,
            actor=ACTOR,
            action="rollout.auto_skipped",
            entity_type="image",
            entity_id=image_id,
            after={"tag": tag, "reason": exc.detail, "code": exc.code},
        )
        return None
    return rollout
