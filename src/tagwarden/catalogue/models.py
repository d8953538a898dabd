"""The catalogue: approved base images (``images``) and deployable tags (``image_tags``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
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
