"""Rollouts (seed 000, step 4) and their per-device progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, StateType, UTCDateTime, one_of, utcnow
from tagwarden.rollouts.states import DeviceState, RolloutStatus


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (one_of("status", RolloutStatus),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    image: Mapped[str] = mapped_column(String(500))  # display name at creation: "redis"
    tag: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(100))  # the tag's (index) digest
    app_name: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The seed's column: the uuids asked for (or matched by the selector) at creation.
    target_devices: Mapped[list[str]] = mapped_column(JSONType, default=list)
    selector: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    status: Mapped[RolloutStatus] = mapped_column(
        StateType(RolloutStatus), default=RolloutStatus.PENDING, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    current_batch: Mapped[int | None] = mapped_column(Integer)
    batch_count: Mapped[int] = mapped_column(Integer, default=0)
    # Failures already seen when the rollout was last resumed: the threshold counts only new
    # ones, or a resumed rollout would pause again at once.
    failures_at_resume: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Devices finished (succeeded or failed) when it was last resumed: a failure share to stop
    # on (options.abort) is taken over the devices finished since, as the count is.
    finished_at_resume: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A continuous rollout (options.continuous) takes devices that match its selector later
    # until an admin closes it; it can finish only once closed.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RolloutDevice(Base):
    __tablename__ = "rollout_devices"
    __table_args__ = (UniqueConstraint("rollout_id", "device_id"), one_of("state", DeviceState))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    app_name: Mapped[str] = mapped_column(String(100))
    batch: Mapped[int | None] = mapped_column(Integer)  # null for a skipped device
    state: Mapped[DeviceState] = mapped_column(StateType(DeviceState), default=DeviceState.PENDING)
    # True while the rollout is pending, running or paused: "one active rollout per device and
    # app" is a partial unique index on it, decided by the database.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    # Bytes the device downloads for the target, planned at creation (see evidence.sizes);
    # null when the target's size is not known.
    download_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # The target the device had before this rollout, restored by a rollback.
    had_previous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    previous_image_id: Mapped[int | None] = mapped_column(Integer)
    previous_image: Mapped[str | None] = mapped_column(String(500))
    previous_tag: Mapped[str | None] = mapped_column(String(128))
    previous_digest: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    healthy_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


Index("ix_rollout_devices_rollout_batch", RolloutDevice.rollout_id, RolloutDevice.batch)
Index(
    "uq_rollout_devices_one_active",
    RolloutDevice.device_id,
    RolloutDevice.app_name,
    unique=True,
    postgresql_where=text("active"),
    sqlite_where=text("active"),
)
