"""The ``digest_evidence`` table: what was found out about one digest of one image."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, UTCDateTime, utcnow


class DigestEvidence(Base):
    """One row per (image, digest): a request shows the row of its digest and never copies it,
    so a re-check (on demand, at activation, at rollout start) is seen by every request and
    rollout of that digest at once."""

    __tablename__ = "digest_evidence"
    __table_args__ = (UniqueConstraint("image_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(100))
    # schemas.SignatureEvidence and the size evidence as JSON; null until checked.
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    size: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # vulnerabilities.schemas.VulnerabilityEvidence as JSON; null until matched.
    vulnerabilities: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SigningKey(Base):
    """A public key an admin trusts to sign images; policies name keys by ``name``."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The PEM as given (SubjectPublicKeyInfo), so it can be shown back and re-read exactly.
    public_key: Mapped[str] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the DER public key: what a person compares with `cosign public-key` output.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
