"""Approval rules and the holds of requests a rule approves once they are old enough."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, UTCDateTime, utcnow

RULE_KINDS = ("patch", "minor", "range", "regex")


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
