"""Approval request bodies, in the seeds' field names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue import references
from tagwarden.catalogue.schemas import ImageTagOut
from tagwarden.inputs import STRICT_INPUT, Id, Text


class ApprovalRequestCreate(BaseModel):
    """A manual request to admit one tag (source ``manual``)."""

    model_config = STRICT_INPUT

    image_id: Id
    tag_name: str = Field(pattern=references.TAG_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tag_name")
    @classmethod
    def _tag(cls, value: str) -> str:
        error = references.tag_error(value)
        if error:
            raise ValueError(error)
        return value


class Decision(BaseModel):
    model_config = STRICT_INPUT

    notes: Text | None = Field(default=None, max_length=5000)


class BulkDecision(BaseModel):
    model_config = STRICT_INPUT

    ids: list[Id] = Field(min_length=1, max_length=500)
    action: Literal["approve", "reject"]
    notes: Text | None = Field(default=None, max_length=5000)


class ApprovalRequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: int
    image_name: str
    tag_name: str | None
    status: str
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    digest: str | None
    source: str
    requested_at: datetime
    requested_by: str | None
    reviewed_at: datetime | None
    reviewed_by: str | None
    notes: str | None
    processed_at: datetime | None
    image_tags: list[ImageTagOut] | None = Field(
        default=None, description="the image_tags rows, when this call activated the tag"
    )

    @classmethod
    def of(
        cls, request: ApprovalRequest, image_tags: list[ImageTagOut] | None = None
    ) -> ApprovalRequestOut:
        out = cls.model_validate(request)
        out.image_tags = image_tags
        return out


class ProcessOut(BaseModel):
    message: str
    approval_request: ApprovalRequestOut
    image_tags: list[ImageTagOut]
    created: list[str] = Field(description="architectures added by this call")
    already_processed: bool


class BulkResult(BaseModel):
    id: int
    ok: bool
    status: str | None = None
    detail: str | None = None
    code: str | None = None


class BulkOut(BaseModel):
    results: list[BulkResult]
    succeeded: int
    failed: int
