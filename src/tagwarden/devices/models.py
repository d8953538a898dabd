"""Devices and their apps: the target state a device polls for and what it last reported.

The ``apps`` table (an app's container configuration) is here too: it is part of every device's
target state, and the poll reads it beside ``device_apps``; the apps part edits it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, StateType, UTCDateTime, one_of, utcnow
from tagwarden.devices.states import AppHealth, AppStatus


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(32), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # SHA-256 of the device key: keys are 256-bit random, so a fast hash is enough (as tokens).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    # Bumped on every change of the target state or the poll interval: the ETag is derived from
    # it, so a conditional poll is one indexed row read and no body is built.
    state_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # True while the device is in an active batch: it is told to poll more often.
    fast_poll: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When key_hash, state_version or fast_poll last changed (the writer's wall clock): the
    # device index of every replica re-reads rows changed since its last refresh (devices/index.py).
    # Not updated_at, which the last-seen flush bumps for every polling device.
    state_changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default="1970-01-01 00:00:00+00:00", index=True
    )
    # Written in batches by the presence flusher, never once per poll.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeviceApp(Base):
    """One app on one device: its target (null target = none) and the device's last report."""

    __tablename__ = "device_apps"
    __table_args__ = (
        UniqueConstraint("device_id", "app_name"),
        one_of("status", AppStatus),
        one_of("health", AppHealth),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    app_name: Mapped[str] = mapped_column(String(100))
    # Target state; ``image`` is the image's display name (``redis``), kept here so a poll
    # builds the reference without a join.
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    image: Mapped[str | None] = mapped_column(String(500))
    tag: Mapped[str | None] = mapped_column(String(128))
    digest: Mapped[str | None] = mapped_column(String(100))
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"))
    target_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The target is to be downloaded but not yet run: its rollout waits for a maintenance
    # window (the poll says "prefetch": true; the monitor clears it when a window opens).
    prefetch: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What the device last reported.
    current_image: Mapped[str | None] = mapped_column(String(600))
    current_digest: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[AppStatus | None] = mapped_column(StateType(AppStatus))
    health: Mapped[AppHealth | None] = mapped_column(StateType(AppHealth))
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def reference(self) -> str | None:
        """The pinned reference a device pulls: ``redis:7.2.5-alpine@sha256:…``."""
        if not self.digest or not self.image:
            return None
        return (
            f"{self.image}:{self.tag}@{self.digest}" if self.tag else f"{self.image}@{self.digest}"
        )

    def as_report(self) -> dict[str, Any]:
        return {
            "image": self.current_image,
            "digest": self.current_digest,
            "status": self.status,
            "health": self.health,
            "reason": self.reason,
            "message": self.message,
            "reported_at": self.reported_at.isoformat() if self.reported_at else None,
        }


class DeviceDeletion(Base):
    """A tombstone: other replicas' device indexes drop the deleted device's key from it."""

    __tablename__ = "device_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer)
    uuid: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class App(Base):
    """What the agent needs to run an app: the name is the one rollouts give ``device_apps``
    (the image name unless the rollout names another), the image is the one the app must run."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # RESTRICT: deleting an image must not silently leave an app that names nothing.
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    # The validated, normalised form (schemas.AppConfig without unset keys): exactly what the
    # device's state carries, so a poll copies it without re-validating.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))
