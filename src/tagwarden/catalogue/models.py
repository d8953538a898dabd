"""The catalogue: approved base images (``images``), deployable tags (``image_tags``), and each
image's policy (``image_policies``: approvers, rollout template, webhook secret, evidence
policies), which approvals, rules, evidence and webhooks all read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.catalogue.states import ImageStatus
from tagwarden.db import Base, JSONType, UTCDateTime, one_of, utcnow

APPROVAL_STATUSES = tuple(ImageStatus)
TAG_POLICIES = ("latest", "all")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("registry", "namespace", "image_name"),
        one_of("approval_status", ImageStatus),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_name: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(255), default="library")
    # "registry" is reserved by SQLAlchemy's declarative base; the column keeps the seeds' name.
    registry_host: Mapped[str] = mapped_column("registry", String(255), default="docker.io")
    approval_status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING)
    category: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    watch_for_updates: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    check_interval_minutes: Mapped[int | None] = mapped_column(Integer)
    tag_include: Mapped[str | None] = mapped_column(String(500))
    tag_exclude: Mapped[str | None] = mapped_column(String(500))
    tag_policy: Mapped[str] = mapped_column(String(16), default="latest", server_default="latest")
    # Tags whose re-push every rescan looks for, tracked or not (``latest``): the monitor
    # otherwise spends a request only on tags someone asked about, activated or deploys.
    watch_tags: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def repository(self) -> str:
        """The repository path inside its registry: ``namespace/image_name``."""
        return f"{self.namespace}/{self.image_name}"

    @property
    def display_name(self) -> str:
        """How people write it: ``redis`` for official Docker Hub images, else the full path."""
        if self.registry_host == "docker.io" and self.namespace == "library":
            return self.image_name
        if self.registry_host == "docker.io":
            return self.repository
        return f"{self.registry_host}/{self.repository}"


class ImageTag(Base):
    __tablename__ = "image_tags"
    __table_args__ = (
        UniqueConstraint("image_id", "tag", "architecture"),
        Index(
            "ix_image_tags_metadata_gin",
            "metadata",
            postgresql_using="gin",
            info={"postgresql_only": True},
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(128))
    # The tag's own digest (the index of a multi-arch tag) and this architecture's manifest.
    digest: Mapped[str | None] = mapped_column(String(100))
    platform_digest: Mapped[str | None] = mapped_column(String(100))
    architecture: Mapped[str] = mapped_column(String(32))
    last_updated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    is_recommended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_deprecated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    approval_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("image_approval_requests.id", ondelete="SET NULL")
    )
    # A finding published after activation that the image's vulnerability policy blocks: no new
    # rollout of a recalled row starts until the recall is cleared.
    is_recalled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    recall_reason: Mapped[str | None] = mapped_column(Text)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Seed 000: "efficient queries for show me latest tags".
Index("ix_image_tags_last_updated_desc", ImageTag.last_updated.desc())


class ImagePolicy(Base):
    """Per-image settings of the approval flow; an image without a row gets the defaults."""

    __tablename__ = "image_policies"
    __table_args__ = (CheckConstraint("required_approvals >= 1", name="required_approvals"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    required_approvals: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # SHA-256 of the image's own Docker Hub webhook secret; the path secret is hashed and
    # compared in constant time, so the secret itself is never stored.
    webhook_secret_hash: Mapped[str | None] = mapped_column(String(64))
    # {"strategy": …, "selector": {…}, "options": {…}}: started when a tag is activated.
    rollout_template: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # evidence.schemas.SignaturePolicy and SizePolicy as JSON; null is mode "off".
    signature_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    size_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # vulnerabilities.schemas.VulnerabilityPolicy as JSON; null blocks nothing.
    vulnerability_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))
