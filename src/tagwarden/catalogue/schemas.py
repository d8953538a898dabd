"""Catalogue request and response bodies (the seeds' JSON field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from tagwarden import patterns, references
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.inputs import STRICT_INPUT, WHOLE, Regex, Text, leave_out

# A tag of the grammar, as an image's ``watch_tags`` names it.
WatchedTag = Annotated[str, Field(max_length=128, pattern=references.TAG_PATTERN)]
# Watched tags cost a request each at every rescan: a short list, not a second filter.
WatchTags = Annotated[list[WatchedTag], Field(max_length=50)]


class ImageCreate(BaseModel):
    model_config = STRICT_INPUT

    # namespace/image_name is at most 255 characters (the repository path's limit), which the
    # document can only say as a bound on each: 127 + "/" + 127.
    image_name: str = Field(max_length=127, pattern=references.COMPONENT_PATTERN)
    namespace: str = Field(default="library", max_length=127, pattern=references.NAMESPACE_PATTERN)
    registry: str = Field(default="docker.io", max_length=255, pattern=references.DOMAIN_PATTERN)
    category: Text | None = Field(default=None, max_length=100)
    description: Text | None = Field(default=None, max_length=5000)
    watch_for_updates: bool = False
    check_interval_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60), WHOLE] | None = None
    tag_include: Regex | None = None
    tag_exclude: Regex | None = None
    tag_policy: Literal["latest", "all"] = "latest"
    # Tags whose re-push every rescan looks for, asked about or not (e.g. ["latest"]).
    watch_tags: WatchTags = Field(default_factory=list)

    @field_validator("tag_include", "tag_exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _valid_regex(value)

    @field_validator("watch_tags")
    @classmethod
    def _watch_tags(cls, value: list[str]) -> list[str]:
        return _valid_tags(value)


class ImageUpdate(BaseModel):
    model_config = STRICT_INPUT

    category: Text | None = Field(default=None, max_length=100)
    description: Text | None = Field(default=None, max_length=5000)
    check_interval_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60), WHOLE] | None = None
    tag_include: Regex | None = None
    tag_exclude: Regex | None = None
    # Give it or leave it out: an image always has a policy, so null is refused (documented
    # without null, as the rollout fields are).
    tag_policy: Literal["latest", "all"] | None = Field(default=None, json_schema_extra=leave_out)
    # The whole list (an empty one clears it); null is refused like tag_policy's.
    watch_tags: WatchTags | None = Field(default=None, json_schema_extra=leave_out)

    @field_validator("tag_include", "tag_exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _valid_regex(value)

    @field_validator("watch_tags")
    @classmethod
    def _watch_tags(cls, value: list[str] | None) -> list[str] | None:
        return _valid_tags(value) if value is not None else None


def _valid_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if error := references.tag_error(tag):
            raise ValueError(error)
    return list(dict.fromkeys(tags))  # each once, in the order given


def _valid_regex(value: str | None) -> str | None:
    # RE2, as the monitor runs it: a pattern it refuses (a backreference, a lookaround) is a
    # 422 that says why, never a filter that fails at every check.
    return patterns.check(value) if value else None


class MonitoringUpdate(BaseModel):
    model_config = STRICT_INPUT

    watch_for_updates: bool


class TagFlag(BaseModel):
    model_config = STRICT_INPUT

    tag: str = Field(pattern=references.TAG_PATTERN)
    value: bool = True

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        error = references.tag_error(value)
        if error:
            raise ValueError(error)
        return value


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_name: str
    namespace: str
    # The model's attribute is registry_host ("registry" is reserved by SQLAlchemy).
    registry: str = Field(validation_alias=AliasChoices("registry_host", "registry"))
    approval_status: str
    category: str | None
    description: str | None
    watch_for_updates: bool
    last_checked_at: datetime | None
    next_check_at: datetime | None
    check_interval_minutes: int | None
    tag_include: str | None
    tag_exclude: str | None
    tag_policy: str
    watch_tags: list[str]
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, image: Image) -> ImageOut:
        return cls.model_validate(image)


class MonitoringOut(BaseModel):
    message: str
    image: ImageOut


class ImageTagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: int
    tag: str
    digest: str | None
    platform_digest: str | None
    architecture: str
    last_updated: datetime | None
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    is_recommended: bool
    is_deprecated: bool
    is_recalled: bool = False
    recall_reason: str | None = None
    recalled_at: datetime | None = None
    approval_request_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: ImageTag) -> ImageTagOut:
        return cls.model_validate(row)


class TagFlagOut(BaseModel):
    message: str
    image_tags: list[ImageTagOut]
