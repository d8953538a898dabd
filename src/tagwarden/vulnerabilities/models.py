"""The ``sboms`` table (one package list per platform digest, fetched or generated once), the
OSV records read from disk, and the findings of matching one against the other."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
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


class OsvRecord(Base):
    """One OSV record as imported from disk; ``modified`` decides whether a re-import replaces
    it, and the newest ``modified`` is the date of the data a finding was matched against."""

    __tablename__ = "osv_records"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    modified: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    published: Mapped[datetime | None] = mapped_column(UTCDateTime)
    aliases: Mapped[list[str]] = mapped_column(JSONType, default=list)
    summary: Mapped[str | None] = mapped_column(Text)
    # The record's own severity, ranked (critical … unknown): from its CVSS vectors, else from
    # its database_specific severity; an affected entry may say otherwise (OsvAffected).
    severity: Mapped[str] = mapped_column(String(16))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OsvAffected(Base):
    """One ``affected[]`` entry of a record, indexed by (ecosystem, package name): matching a
    package reads only the entries that name it, never the whole set."""

    __tablename__ = "osv_affected"
    __table_args__ = (Index("ix_osv_affected_ecosystem_name", "ecosystem", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(
        ForeignKey("osv_records.id", ondelete="CASCADE"), index=True
    )
    ecosystem: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    # [{"type": "ECOSYSTEM", "events": [{"introduced": …}, {"fixed": …}]}] and the explicit
    # ``versions`` list, as OSV gives them.
    ranges: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    versions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    severity: Mapped[str] = mapped_column(String(16))


class Finding(Base):
    """A record that hits a package of one platform digest's SBOM, as of the last match;
    a re-match adds what is new (the recalls' trigger) and removes what no longer hits."""

    __tablename__ = "vulnerability_findings"
    __table_args__ = (UniqueConstraint("digest", "osv_id", "package", "installed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100), index=True)
    osv_id: Mapped[str] = mapped_column(String(200))
    package: Mapped[str] = mapped_column(String(300))
    ecosystem: Mapped[str] = mapped_column(String(100))
    installed: Mapped[str] = mapped_column(String(200))
    fixed_in: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    aliases: Mapped[list[str]] = mapped_column(JSONType, default=list)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
