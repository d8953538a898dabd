"""Approval rules and the per-image policy: manage them, and let rules decide requests."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import approving
from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.service import NewRequest, get_request
from tagwarden.approvals.states import RequestStatus
from tagwarden.audit import service as audit
from tagwarden.auth.service import Principal
from tagwarden.catalogue.models import ImageTag
from tagwarden.catalogue.service import get_image
from tagwarden.db import flush_unique
from tagwarden.errors import Conflict, DomainError, InvalidInput, NotFound, failure_reason
from tagwarden.rules import policy
from tagwarden.rules.models import RULE_KINDS, ApprovalRule, RuleHold

log = logging.getLogger("tagwarden.rules")
RULES_ACTOR = "approval-rules"  # who records a rule's failure (no one rule may be to blame)


def rule_identity(rule: ApprovalRule) -> str:
    return f"rule:{rule.name}"


# -- rules -------------------------------------------------------------------------------------


async def add_rule(
    session: AsyncSession,
    image_id: int,
    *,
    name: str,
    kind: str,
    pattern: str | None,
    min_age_hours: int,
    actor: str,
) -> ApprovalRule:
    image = await get_image(session, image_id)
    name = name.strip()
    if not name or kind not in RULE_KINDS or min_age_hours < 0:
        raise InvalidInput(f"a rule needs a name, a kind ({', '.join(RULE_KINDS)}) and age ≥ 0")
    try:
        checked = policy.check_pattern(kind, pattern)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    rule = ApprovalRule(
        image_id=image.id,
        name=name,
        kind=kind,
        pattern=checked,
        min_age_hours=min_age_hours,
        enabled=True,
        created_by=actor,
    )
    session.add(rule)
    await flush_unique(
        session,
        Conflict(f"{image.display_name} already has a rule named {name!r}", code="rule_exists"),
    )
    audit.record(
        session,
        actor=actor,
        action="approval_rule.created",
        entity_type="approval_rule",
        entity_id=rule.id,
        after={"image_id": image.id, "name": name, "kind": kind, "pattern": checked,
               "min_age_hours": min_age_hours},
    )  # fmt: skip
    return rule


async def list_rules(session: AsyncSession, image_id: int) -> Sequence[ApprovalRule]:
    await get_image(session, image_id)
    rows = await session.scalars(
        select(ApprovalRule).where(ApprovalRule.image_id == image_id).order_by(ApprovalRule.id)
    )
    return rows.all()


async def delete_rule(
    session: AsyncSession, image_id: int, rule_id: int, *, actor: str
) -> ApprovalRule:
    rule = await session.get(ApprovalRule, rule_id)
    if rule is None or rule.image_id != image_id:
        raise NotFound(f"approval rule {rule_id} of image {image_id} not found")
    await session.delete(rule)
    audit.record(
        session,
        actor=actor,
        action="approval_rule.deleted",
        entity_type="approval_rule",
        entity_id=rule.id,
        before={"image_id": image_id, "name": rule.name, "kind": rule.kind},
    )
    return rule


# -- rules deciding requests -------------------------------------------------------------------


async def _activated_tags(session: AsyncSession, image_id: int) -> list[str]:
    rows = await session.scalars(
        select(ImageTag.tag).where(ImageTag.image_id == image_id).distinct()
    )
    return list(rows.all())


async def rules_for(session: AsyncSession, image_id: int) -> Sequence[ApprovalRule]:
    """The image's enabled rules, in the order they were made."""
    return (await rules_for_images(session, [image_id])).get(image_id, [])


async def rules_for_images(
    session: AsyncSession, image_ids: Collection[int]
) -> dict[int, list[ApprovalRule]]:
    """Several images' enabled rules in one query: image id → its rules in the order they were
    made (an image with none is absent)."""
    if not image_ids:
        return {}
    found: dict[int, list[ApprovalRule]] = {}
    rules = await session.scalars(
        select(ApprovalRule)
        .where(ApprovalRule.image_id.in_(image_ids), ApprovalRule.enabled.is_(True))
        .order_by(ApprovalRule.id)
    )
    for rule in rules.all():
        found.setdefault(rule.image_id, []).append(rule)
    return found


async def evaluate(
    session: AsyncSession,
    request: ApprovalRequest,
    *,
    now: datetime,
    then: AfterApproval,
    rules: Sequence[ApprovalRule] | None = None,
) -> ApprovalRule | None:
    """Let the image's rules decide a pending tag request.

    Of the matching rules, the one whose minimum age passes first wins. Old enough: the
    request is approved now, through the same decision and activation path as a person's, as
    ``rule:<name>``. Too young: a hold records when it will be, for :func:`approve_due`.
    Returns the rule that approved the request, if one did.
    """
    if request.tag_name is None or request.status != RequestStatus.PENDING:
        return None
    if rules is None:
        rules = await rules_for(session, request.image_id)
    if not rules:
        return None
    activated = await _activated_tags(session, request.image_id)
    released = policy.released_at(request.metadata_, request.requested_at)
    matching = [
        (policy.due_at(released, r.min_age_hours), r.id, r)
        for r in rules
        if policy.matches(r.kind, r.pattern, request.tag_name, activated)
    ]
    if not matching:
        return None
    due, _, rule = min(matching, key=lambda m: (m[0], m[1]))
    if due > now:
        session.add(RuleHold(request_id=request.id, rule_id=rule.id, due_at=due))
        log.info("rule %s holds %s:%s until %s", rule.name, request.image_name,
                 request.tag_name, due.isoformat())  # fmt: skip
        return None
    age_hours = (now - released).total_seconds() / 3600
    await approving.decide(
        session,
        request.id,
        approve=True,
        notes=f"approved by rule {rule.name} ({rule.kind}"
        + (f" {rule.pattern}" if rule.pattern else "")
        + f"; released {age_hours:.1f} h ago, minimum {rule.min_age_hours} h)",
        actor=Principal(identity=rule_identity(rule), role="approver"),
        then=then,
        required_approvals=1,
        by_rule=True,
    )
    return rule


async def evaluate_isolated(
    session: AsyncSession,
    request: ApprovalRequest,
    *,
    now: datetime,
    then: AfterApproval,
    rules: Sequence[ApprovalRule] | None = None,
) -> ApprovalRule | None:
    """:func:`evaluate` in a savepoint, so that a rule failing on one tag (activation refused,
    an auto-rollout, a bug) never fails the scan, the webhook or the other requests.

    The request stays pending for a person, and its error is recorded in one place: the audit
    entry ``approval.rule_failed`` on the request (with a warning in the log).
    """
    try:
        async with session.begin_nested():
            return await evaluate(session, request, now=now, then=then, rules=rules)
    except Exception as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise  # the database is gone: the caller's transaction is lost anyway
        expected = isinstance(exc, DomainError)
        reason, code = failure_reason(exc, unexpected_code="rule_failed")
        await session.refresh(request)
        log.warning(
            "rules could not decide request %d (%s:%r): %s",
            request.id,
            request.image_name,
            request.tag_name,
            reason,
            exc_info=not expected,
        )
        audit.record(
            session,
            actor=RULES_ACTOR,
            action="approval.rule_failed",
            entity_type="approval_request",
            entity_id=request.id,
            after={
                "tag": request.tag_name,
                "reason": reason,
                "code": code,
            },
        )
        return None


async def judge_new(
    session: AsyncSession,
    created: Sequence[tuple[int, NewRequest]],
    *,
    now: datetime,
    then: AfterApproval,
) -> None:
    """Let the images' rules judge requests just created from what a registry said: a rule may
    approve one at once, or hold it until it is old enough.

    One query finds the images' rules; most images have none and cost nothing more. Each
    request is judged in its own savepoint (:func:`evaluate_isolated`): if activating fails (no
    architecture to activate, a bug, …), that request stays pending for a person instead of
    half-decided, its error is recorded, and the other requests and the scan go on.
    """
    judged = [(request_id, d) for request_id, d in created if d.judged_by_rules]
    rules = await rules_for_images(session, {d.image_id for _, d in judged})
    for request_id, d in judged:
        if d.image_id in rules:
            request = await get_request(session, request_id)
            await evaluate_isolated(session, request, now=now, then=then, rules=rules[d.image_id])


async def approve_due(
    session: AsyncSession, *, now: datetime, then: AfterApproval, limit: int = 100
) -> list[int]:
    """Approve held requests that came of age; returns their ids.

    Each hold is re-evaluated, not trusted: the rule may be gone, a person may have decided,
    or a newer tag may have been activated so that this one is no longer a bump.
    """
    holds = (
        await session.scalars(
            select(RuleHold)
            .where(RuleHold.due_at <= now)
            .order_by(RuleHold.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    approved: list[int] = []
    for hold in holds:
        await session.execute(delete(RuleHold).where(RuleHold.request_id == hold.request_id))
        request = await session.get(ApprovalRequest, hold.request_id, populate_existing=True)
        if request is None or request.status != RequestStatus.PENDING:
            continue
        # One request's failure spoils no other (and is recorded as that request's).
        if await evaluate_isolated(session, request, now=now, then=then):
            approved.append(request.id)
    return approved
