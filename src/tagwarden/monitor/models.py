"""What the monitor has seen upstream: how "new" and "re-pushed" are decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, UTCDateTime, utcnow


class DiscoveredTag(Base):
    __tablename__ = "discovered_tags"
    __table_args__ = (UniqueConstraint("image_id", "tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str | None] = mapped_column(String(100))
    architectures: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Architecture → that platform's manifest digest, so a one-platform re-push is recognised.
    platforms: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_updated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
