"""Approval rules, rule holds, per-image approval policy and the decisions of each approver."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, UTCDateTime, utcnow

RULE_KINDS = ("patch", "minor", "range", "regex")
DECISIONS = ("approve", "reject")


class ApprovalRule(Base):
    """Approves a new tag of its image without a person, when the tag fits and is old enough."""

    __tablename__ = "approval_rules"
    __table_args__ = (
        UniqueConstraint("image_id", "name"),
        CheckConstraint("kind IN ('patch', 'minor', 'range', 'regex')", name="kind"),
        CheckConstraint("min_age_hours >= 0", name="min_age_hours"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    # The range (``>=7.2, <8``) or the regular expression; unused by patch and minor.
    pattern: Mapped[str | None] = mapped_column(String(500))
    min_age_hours: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))


class RuleHold(Base):
    """A pending request a rule would approve once it is old enough: the periodic pass reads
    only these (an indexed ``due_at``), never every pending request."""

    __tablename__ = "approval_rule_holds"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("image_approval_requests.id", ondelete="CASCADE"), primary_key=True
    )
    rule_id: Mapped[int] = mapped_column(ForeignKey("approval_rules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


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
