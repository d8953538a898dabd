"""Approval rule, image policy and decision bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.approvals.models import ApprovalDecision
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.evidence.schemas import SignaturePolicy, SizePolicy
from tagwarden.inputs import NO_NUL, STRICT_INPUT, WHOLE, Name
from tagwarden.rollouts.schemas import RolloutTemplate
from tagwarden.rules.models import ApprovalRule
from tagwarden.vulnerabilities.schemas import VulnerabilityPolicy

_CLAUSE = r" *(?:>=|<=|==|!=|>|<|=)? *v?[0-9]{1,9}(?:\.[0-9]{1,9}){0,3} *"
# What versions.VersionRange.parse takes: comma-separated clauses of an operator and a version.
RANGE_PATTERN = rf"^{_CLAUSE}(?:,{_CLAUSE})*$"
# Which kinds take which pattern, so that the document allows only rules the server takes.
_PATTERN_FITS_KIND: dict[str, Any] = {
    "anyOf": [
        {"properties": {"kind": {"enum": ["patch", "minor"]}, "pattern": {"type": "null"}}},
        {
            "properties": {
                "kind": {"const": "range"},
                "pattern": {"type": "string", "pattern": RANGE_PATTERN},
            },
            "required": ["pattern"],
        },
        {
            "properties": {
                "kind": {"const": "regex"},
                "pattern": {"type": "string", "minLength": 1, "format": "regex"},
            },
            "required": ["pattern"],
        },
    ]
}


class RuleCreate(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra=_PATTERN_FITS_KIND)

    name: Name = Field(min_length=1, max_length=100)
    kind: Literal["patch", "minor", "range", "regex"]
    pattern: str | None = Field(
        default=None, max_length=500, description='range: ">=7.2, <8"; regex: a full-match'
    )
    min_age_hours: Annotated[int, Field(ge=0, le=24 * 365), WHOLE] = 0


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: int
    name: str
    kind: str
    pattern: str | None
    min_age_hours: int
    enabled: bool
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, rule: ApprovalRule) -> RuleOut:
        return cls.model_validate(rule)


class PolicyUpdate(BaseModel):
    model_config = STRICT_INPUT

    required_approvals: Annotated[int, Field(ge=1, le=10), WHOLE] | None = None
    webhook_secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=NO_NUL,
        description="this image's Docker Hub secret",
    )
    rollout_template: RolloutTemplate | None = None
    signature: SignaturePolicy | None = Field(
        default=None, description="what a digest's signatures must show; null: mode off"
    )
    size: SizePolicy | None = Field(
        default=None, description="how large a digest may be; null: mode off"
    )
    vulnerabilities: VulnerabilityPolicy | None = Field(
        default=None, description="which findings block approval and recall; null: none"
    )


class PolicyOut(BaseModel):
    image_id: int
    required_approvals: int
    webhook_secret_set: bool
    rollout_template: dict[str, Any] | None
    signature: SignaturePolicy
    size: SizePolicy
    vulnerabilities: VulnerabilityPolicy

    @classmethod
    def of(cls, policy: ImagePolicy) -> PolicyOut:
        return cls(
            image_id=policy.image_id,
            required_approvals=policy.required_approvals or 1,
            webhook_secret_set=policy.webhook_secret_hash is not None,
            rollout_template=policy.rollout_template,
            signature=SignaturePolicy.model_validate(policy.signature_policy or {}),
            size=SizePolicy.model_validate(policy.size_policy or {}),
            vulnerabilities=VulnerabilityPolicy.model_validate(policy.vulnerability_policy or {}),
        )


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    identity: str
    decision: str
    notes: str | None
    decided_at: datetime

    @classmethod
    def of(cls, decision: ApprovalDecision) -> DecisionOut:
        return cls.model_validate(decision)


class DecisionsOut(BaseModel):
    request_id: int
    status: str
    required_approvals: int
    approvals: int
    decisions: list[DecisionOut]
