"""Notification channels, the outbox of events, and one delivery per event and channel."""

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
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, UTCDateTime, one_of, utcnow
from tagwarden.notify.states import DeliveryStatus

CHANNEL_KINDS = ("slack", "discord", "webhook", "email")
EVENTS = (
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "approval.superseded",  # a pending request closed (rejected) because its tag was re-pushed
    "tag.activated",
    "tag.digest_changed",
    "tag.unsigned",
    "tag.signature_invalid",
    "tag.size_grew",
    "tag.recalled",  # an activated tag gained a finding its vulnerability policy blocks
    "rollout.started",
    "rollout.paused",
    "rollout.completed",
    "rollout.failed",
    "rollout.rolled_back",
    "monitor.error",
)


class NotificationChannel(Base):
    __tablename__ = "notification_channels"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("kind IN ('slack', 'discord', 'webhook', 'email')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    # url (slack, discord, webhook), secret (webhook), to (email). Never shown back in full.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))


class NotificationEvent(Base):
    """The outbox: written in the transaction that made the change, so an event exists exactly
    when its change was committed."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Sent as X-Tagwarden-Idempotency-Key: the same on every attempt, so a receiver that got a
    # delivery whose acknowledgement was lost can tell the retry apart.
    key: Mapped[str] = mapped_column(String(36), unique=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel_id"),
        one_of("status", DeliveryStatus),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("notification_events.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Also the lease: a claimed delivery is pushed forward by the lease, so a worker that dies
    # mid-delivery leaves it due again instead of lost.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
