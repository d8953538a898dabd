"""What approving does, in one place: the decision, then — when the operator's settings say so —
activation into image_tags, then the image's auto-rollout. Every edge (the API, the admin
pages, the CLI, the rules' worker and the monitor's scan) calls these functions with the
:class:`AfterApproval` it built from its own settings; nothing below decides it for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import activation, decisions
from tagwarden.approvals.activation import Activation
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestStatus
from tagwarden.auth.service import Principal
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.config import Settings
from tagwarden.db import utcnow
from tagwarden.errors import DomainError
from tagwarden.evidence import service as evidence
from tagwarden.evidence.sizing import size_gate
from tagwarden.rollouts import auto
from tagwarden.vulnerabilities.service import vulnerability_gate


@dataclass(frozen=True, slots=True)
class AfterApproval:
    """The steps after a request is approved, and their inputs."""

    # TAGWARDEN_AUTO_PROCESS_APPROVED: activate in the approval's transaction (the seed's
    # "Option B"), or leave the request approved and unprocessed until someone processes it.
    activate: bool
    # How often devices poll: the auto-rollout's timings are counted in polls.
    poll_interval_seconds: int

    @classmethod
    def of(cls, settings: Settings) -> AfterApproval:
        return cls(settings.auto_process_approved, settings.device_poll_interval_seconds)


@dataclass(frozen=True)
class DecisionResult:
    request: ApprovalRequest
    activation: Activation | None
    approvals: int = 0
    required_approvals: int = 1


async def decide(
    session: AsyncSession,
    request_id: int,
    *,
    approve: bool,
    notes: str | None,
    actor: Principal,
    then: AfterApproval,
    required_approvals: int | None = None,
    by_rule: bool = False,
) -> DecisionResult:
    """Decide a request (approvals.decisions.decide); once it is approved, activate it (and
    start its auto-rollout) when ``then.activate``.

    An approval of a tag is held to the image's signature and size policies first: ``enforce``
    refuses it (409 ``signature_required`` / ``size_exceeded``), as does a finding the
    vulnerability policy blocks (409 ``vulnerabilities_blocked``), ``warn`` lets a person approve
    past the failure, written as ``failed_checks`` in the decision's audit entry. A rule
    (``by_rule``) never approves a failing digest, whatever the mode."""
    failed: list[dict[str, Any]] = []
    if approve:
        failed = await _evidence_gates(session, request_id, strict=by_rule)
    decided = await decisions.decide(
        session,
        request_id,
        approve=approve,
        notes=notes,
        actor=actor,
        required_approvals=required_approvals,
        failed_checks=failed,
    )
    done = None
    if decided.approved and then.activate:
        done = await activate(
            session, decided.request.id, actor=actor, poll_interval=then.poll_interval_seconds
        )
    return DecisionResult(decided.request, done, decided.approvals, decided.required_approvals)


async def _evidence_gates(
    session: AsyncSession, request_id: int, *, strict: bool
) -> list[dict[str, Any]]:
    """The checks the request's digest fails under ``warn``; a failure under ``enforce`` (or
    any failure when ``strict``) raises. A request that is missing or no longer pending is left
    to decisions.decide, which answers for it."""
    request = await session.get(ApprovalRequest, request_id)
    if request is None or request.tag_name is None or request.status != RequestStatus.PENDING:
        return []
    failed: list[dict[str, Any]] = []
    warning = await evidence.signature_gate(
        session, request.image_id, request.digest, step="approval", strict=strict
    )
    if warning is not None:
        failed.append(warning.as_dict())
    failed += await size_gate(session, request.image_id, request.digest, strict=strict)
    await vulnerability_gate(
        session, request.image_id, request.digest, step="approval", strict=strict
    )
    return failed


async def activate(
    session: AsyncSession, request_id: int, *, actor: Principal, poll_interval: int
) -> Activation:
    """Activate an approved request (the seeds' "process") and, when that changed image_tags,
    start the rollout the image's template describes."""
    done = await activation.process(session, request_id, actor=actor)
    if not (done.created or done.updated) or done.request.tag_name is None:
        return done
    policy = await session.get(ImagePolicy, done.image.id)
    if policy is None or not policy.rollout_template:
        return done
    rollout = await auto.start(
        session,
        template=policy.rollout_template,
        image_id=done.image.id,
        tag=done.request.tag_name,
        approved_by=done.request.reviewed_by or actor.identity,
        now=utcnow(),
        poll_interval=poll_interval,
        request_id=done.request.id,
    )
    return replace(done, auto_rollout_id=rollout.id if rollout else None)


@dataclass(frozen=True)
class BulkItem:
    request_id: int
    status: str | None
    error: DomainError | None


async def bulk_decide(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    approve: bool,
    notes: str | None,
    actor: Principal,
    then: AfterApproval,
) -> list[BulkItem]:
    """One result per id; each decision in its own savepoint so one failure spoils no other."""
    results: list[BulkItem] = []
    for request_id in dict.fromkeys(ids):
        try:
            async with session.begin_nested():
                decided = await decide(
                    session, request_id, approve=approve, notes=notes, actor=actor, then=then
                )
            results.append(BulkItem(request_id, decided.request.status, None))
        except DomainError as exc:
            results.append(BulkItem(request_id, None, exc))
    return results
