"""Approval rules and the image's approval policy; the decisions recorded on a request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from tagwarden.approvals import decisions, policies
from tagwarden.approvals.service import get_request
from tagwarden.approvals.states import RequestAction
from tagwarden.auth.deps import Admin, Session, Viewer
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.rules import service
from tagwarden.rules.schemas import (
    DecisionOut,
    DecisionsOut,
    PolicyOut,
    PolicyUpdate,
    RuleCreate,
    RuleOut,
)

router = APIRouter(prefix="/api/v1/images", tags=["approval rules"])


@router.get("/approvals/{request_id}/decisions")
async def list_decisions(request_id: IdPath, session: Session, _: Viewer) -> DecisionsOut:
    request = await get_request(session, request_id)
    rows = await decisions.list_decisions(session, request_id)
    return DecisionsOut(
        request_id=request.id,
        status=request.status,
        required_approvals=await decisions.required_approvals_of(session, request.image_id),
        approvals=sum(d.decision == RequestAction.APPROVE for d in rows),
        decisions=[DecisionOut.of(d) for d in rows],
    )


@router.get("/{image_id}/rules")
async def list_rules(image_id: IdPath, session: Session, _: Viewer) -> list[RuleOut]:
    return [RuleOut.of(r) for r in await service.list_rules(session, image_id)]


@router.post(
    "/{image_id}/rules", status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
async def add_rule(image_id: IdPath, body: RuleCreate, session: Session, who: Admin) -> RuleOut:
    rule = await service.add_rule(
        session,
        image_id,
        name=body.name,
        kind=body.kind,
        pattern=body.pattern,
        min_age_hours=body.min_age_hours,
        actor=who.identity,
    )
    return RuleOut.of(rule)


@router.delete("/{image_id}/rules/{rule_id}")
async def delete_rule(image_id: IdPath, rule_id: IdPath, session: Session, who: Admin) -> RuleOut:
    return RuleOut.of(await service.delete_rule(session, image_id, rule_id, actor=who.identity))


@router.get("/{image_id}/policy")
async def get_policy(image_id: IdPath, session: Session, _: Viewer) -> PolicyOut:
    return PolicyOut.of(await policies.get_policy(session, image_id))


@router.put("/{image_id}/policy")
async def set_policy(
    image_id: IdPath, body: PolicyUpdate, session: Session, who: Admin
) -> PolicyOut:
    """Fields left out stay as they are; ``null`` clears the secret or the template, and turns
    a signature or size check off."""
    given = body.model_fields_set
    template = body.rollout_template.model_dump() if body.rollout_template else None
    policy = await policies.set_policy(
        session,
        image_id,
        actor=who.identity,
        required_approvals=body.required_approvals,
        webhook_secret=body.webhook_secret if "webhook_secret" in given else policies.UNSET,
        rollout_template=template if "rollout_template" in given else policies.UNSET,
        signature_policy=_dumped(body.signature) if "signature" in given else policies.UNSET,
        size_policy=_dumped(body.size) if "size" in given else policies.UNSET,
        vulnerability_policy=(
            _dumped(body.vulnerabilities) if "vulnerabilities" in given else policies.UNSET
        ),
    )
    return PolicyOut.of(policy)


def _dumped(model: BaseModel | None) -> dict[str, Any] | None:
    return model.model_dump(mode="json") if model is not None else None
