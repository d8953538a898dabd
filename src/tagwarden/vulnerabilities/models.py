"""The ``sboms`` table: one package list per platform digest, fetched or generated once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tagwarden.db import Base, JSONType, UTCDateTime, one_of, utcnow
from tagwarden.vulnerabilities.states import SbomSource, SbomStatus


class Sbom(Base):
    """Keyed by the platform manifest's digest alone: the same digest in two images (or two
    registries) is the same content, so it is catalogued once. ``packages`` is a list of
    ``{"name", "version", "purl", "ecosystem"}`` (ecosystem in OSV's spelling, e.g.
    ``"Alpine:v3.20"``, ``"Debian:12"``, ``"PyPI"``), what matching and recalls read."""

    __tablename__ = "sboms"
    __table_args__ = (
        one_of("status", SbomStatus),
        one_of("source", SbomSource),
    )

    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    # The document's format as read: "spdx-json", "cyclonedx-json" or "syft-json".
    format: Mapped[str | None] = mapped_column(String(32))
    packages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
