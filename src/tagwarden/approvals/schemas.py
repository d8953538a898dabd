"""Approval request bodies, in the seeds' field names."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypeAliasType

from tagwarden import references
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.schemas import ImageTagOut
from tagwarden.evidence.schemas import EvidenceOut
from tagwarden.inputs import NO_NUL, STRICT_INPUT, Id, Key, Text, keys

JsonText = Annotated[str, Field(pattern=NO_NUL)]
# Any JSON that PostgreSQL's JSONB holds: no NUL in a string or a key (metadata._refuse_unstorable).
Json = TypeAliasType(
    "Json",
    "bool | int | float | JsonText | list[Json] | JsonObject | None",
)
JsonObject = Annotated[dict[Key, Json], Field(json_schema_extra=keys())]
Digest = Annotated[str, Field(pattern=references.DIGEST_PATTERN)]
# A timestamp metadata.parse_timestamp reads, whatever the month (so days end at 28 here).
TIMESTAMP_PATTERN = (
    r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?$"
)


class PlatformDigest(BaseModel):
    model_config = STRICT_INPUT

    digest: Digest


class RequestMetadata(BaseModel):
    """What activation reads (metadata.validate's rules, in the document); other keys are kept."""

    # The keys of the other entries are free text too (pydantic documents only their values).
    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=keys())

    architectures: list[Annotated[str, Field(min_length=1, max_length=32, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=64, description="one image_tags row per architecture"
    )
    digest: Digest | None = None
    # The pattern documents a form that is always read; metadata.validate decides (any ISO
    # 8601 timestamp parse_timestamp reads), so a 31st of January is not refused here.
    last_updated: str | None = Field(
        default=None,
        json_schema_extra={"pattern": TIMESTAMP_PATTERN},
        description="ISO 8601, e.g. 2026-01-02T03:04:05Z (other ISO forms are read too)",
    )
    platforms: dict[Key, Digest | PlatformDigest] | None = Field(
        default=None, description="architecture → digest", json_schema_extra=keys()
    )
    __pydantic_extra__: dict[Key, Json]


class ApprovalRequestCreate(BaseModel):
    """A manual request to admit one tag (source ``manual``)."""

    model_config = STRICT_INPUT

    image_id: Id
    tag_name: str = Field(pattern=references.TAG_PATTERN)
    metadata: RequestMetadata

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
    evidence: EvidenceOut | None = Field(
        default=None,
        description="what is known of the request's digest (signature, size); "
        "given by the request's own endpoint and the list",
    )

    @classmethod
    def of(
        cls,
        request: ApprovalRequest,
        image_tags: list[ImageTagOut] | None = None,
        evidence: EvidenceOut | None = None,
    ) -> ApprovalRequestOut:
        out = cls.model_validate(request)
        out.image_tags = image_tags
        out.evidence = evidence
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
