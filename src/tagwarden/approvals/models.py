"""Approval requests (a tag, or an image, waiting for a decision), each approver's decision
on one, and the image's approval policy (how many distinct approvers it needs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.approvals.states import RequestStatus
from tagwarden.db import Base, JSONType, UTCDateTime, one_of, utcnow

REQUEST_STATUSES = tuple(RequestStatus)
DECISIONS = ("approve", "reject")


class ApprovalRequest(Base):
    __tablename__ = "image_approval_requests"
    __table_args__ = (one_of("status", RequestStatus),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    image_name: Mapped[str] = mapped_column(String(255))
    # Null asks for the image itself to be admitted into the catalogue.
    tag_name: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING, index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    # Copied out of metadata so "never ask twice for this tag and digest" is an indexed lookup.
    digest: Mapped[str | None] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by: Mapped[str | None] = mapped_column(String(255))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def source(self) -> str:
        return str(self.metadata_.get("source", "manual"))


# At most one pending request per image and tag: enforced by the database, not by Python, so two
# monitor replicas racing on one tag cannot both insert. COALESCE folds the image-level request
# (tag_name NULL) into the same rule, since NULLs never collide in a unique index.
Index(
    "uq_image_approval_requests_one_pending",
    ApprovalRequest.image_id,
    func.coalesce(ApprovalRequest.tag_name, ""),
    unique=True,
    postgresql_where=text(f"status = '{RequestStatus.PENDING}'"),
    sqlite_where=text(f"status = '{RequestStatus.PENDING}'"),
)
Index(
    "ix_image_approval_requests_tag_digest",
    ApprovalRequest.image_id,
    ApprovalRequest.tag_name,
    ApprovalRequest.digest,
)
Index(
    "ix_image_approval_requests_metadata_gin",
    ApprovalRequest.metadata_,
    postgresql_using="gin",
    info={"postgresql_only": True},
)


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


class ApprovalDecision(Base):
    """One approver's decision on one request. The unique key is what stops one identity from
    counting twice, however many replicas or double-clicks race."""

    __tablename__ = "approval_decisions"
    __table_args__ = (
        UniqueConstraint("request_id", "identity"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("image_approval_requests.id", ondelete="CASCADE"), index=True
    )
    identity: Mapped[str] = mapped_column(String(255))
    decision: Mapped[str] = mapped_column(String(16))
    notes: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
