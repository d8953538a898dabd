"""The image's approval policy: how many distinct approvers its requests need, its own webhook
secret, and the rollout its activated tags start by themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.auth.service import hash_token
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.catalogue.service import get_image
from tagwarden.errors import InvalidInput
from tagwarden.evidence import service as evidence
from tagwarden.vulnerabilities import service as vulnerabilities

UNSET: Any = object()  # "leave as it is", distinct from None ("clear it")


async def get_policy(session: AsyncSession, image_id: int) -> ImagePolicy:
    """The stored policy, or the defaults (unsaved) for an image without one."""
    await get_image(session, image_id)
    found = await session.get(ImagePolicy, image_id)
    return found or ImagePolicy(image_id=image_id, required_approvals=1)


async def set_policy(
    session: AsyncSession,
    image_id: int,
    *,
    actor: str,
    required_approvals: int | None = None,
    webhook_secret: str | None = UNSET,
    rollout_template: dict[str, Any] | None = UNSET,
    signature_policy: dict[str, Any] | None = UNSET,
    size_policy: dict[str, Any] | None = UNSET,
    vulnerability_policy: dict[str, Any] | None = UNSET,
) -> ImagePolicy:
    await get_image(session, image_id)
    row = await session.get(ImagePolicy, image_id)
    if row is None:
        row = ImagePolicy(image_id=image_id, required_approvals=1)
        session.add(row)
    before = {
        "required_approvals": row.required_approvals,
        "webhook_secret_set": row.webhook_secret_hash is not None,
        "rollout_template": row.rollout_template,
        "signature": row.signature_policy,
        "size": row.size_policy,
        "vulnerabilities": row.vulnerability_policy,
    }
    if required_approvals is not None:
        if required_approvals < 1:
            raise InvalidInput("required_approvals must be at least 1")
        row.required_approvals = required_approvals
    if webhook_secret is not UNSET:
        if webhook_secret is not None and len(webhook_secret) < 16:
            raise InvalidInput("webhook_secret must be at least 16 characters")
        row.webhook_secret_hash = hash_token(webhook_secret) if webhook_secret else None
    if rollout_template is not UNSET:
        row.rollout_template = rollout_template
    if signature_policy is not UNSET:
        await evidence.check_key_names(session, (signature_policy or {}).get("keys", []))
        row.signature_policy = signature_policy
    if size_policy is not UNSET:
        row.size_policy = size_policy
    if vulnerability_policy is not UNSET:
        row.vulnerability_policy = vulnerability_policy
    row.updated_by = actor
    await session.flush()
    audit.record(
        session,
        actor=actor,
        action="image.policy_updated",
        entity_type="image",
        entity_id=image_id,
        before=before,
        after={
            "required_approvals": row.required_approvals,
            "webhook_secret_set": row.webhook_secret_hash is not None,
            "rollout_template": row.rollout_template,
            "signature": row.signature_policy,
            "size": row.size_policy,
            "vulnerabilities": row.vulnerability_policy,
        },
    )
    if vulnerability_policy is not UNSET:
        # An allowlist entry (or a higher block_severity) clears the recalls it covers.
        await vulnerabilities.policy_changed(session, image_id, actor=actor)
    return row
