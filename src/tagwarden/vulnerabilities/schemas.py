"""Vulnerability policy, evidence and findings bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tagwarden.inputs import NO_NUL, STRICT_INPUT
from tagwarden.vulnerabilities.severity import Severity
from tagwarden.vulnerabilities.states import ScanStatus

# JSON sends a severity as its string; the strict input config wants the enum otherwise.
SeverityIn = Annotated[Severity, Field(strict=False)]
VulnId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:+-]+$")]


class AllowlistEntry(BaseModel):
    """Harbor's CVE allowlist entry: a finding with this id (or alias) does not count until
    ``expires`` (an RFC 3339 time; null: until the entry is removed)."""

    model_config = STRICT_INPUT

    id: VulnId
    reason: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
    expires: Annotated[datetime, Field(strict=False)] | None = None


class VulnerabilityPolicy(BaseModel):
    model_config = STRICT_INPUT

    block_severity: SeverityIn | None = Field(
        default=None,
        description="block findings ranked at or above this (critical > high > medium > low > "
        "unknown; unknown findings only when this is unknown); null blocks nothing",
    )
    only_fixable: bool = Field(default=False, description="count only findings with a fix")
    allowlist: list[AllowlistEntry] = Field(default_factory=list, max_length=1000)


class SeverityCounts(BaseModel):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unknown: int = 0


class PackageEntry(BaseModel):
    name: str
    ecosystem: str | None
    version: str


class PackageUpgrade(BaseModel):
    name: str
    ecosystem: str | None
    previous: str
    current: str


class PackagesDiffOut(BaseModel):
    """vulnerabilities.diff.packages_diff's answer: packages only in the current SBOM, only
    in the previous one, and in both at other versions."""

    added: list[PackageEntry]
    removed: list[PackageEntry]
    upgraded: list[PackageUpgrade]


class VulnerabilityEvidence(BaseModel):
    """What matching a digest's SBOM against the OSV data found."""

    status: ScanStatus
    counts: SeverityCounts = Field(default_factory=SeverityCounts)
    fixable: int = 0
    new: list[str] = Field(
        default_factory=list, description="ids not found in the image's previous approved tag"
    )
    fixed: list[str] = Field(
        default_factory=list, description="ids of the previous approved tag found no longer"
    )
    osv_data: datetime | None = Field(default=None, description="the OSV data's date")
    previous: dict[str, str] | None = Field(
        default=None, description="the approved tag compared with: {tag, digest}"
    )
    packages: PackagesDiffOut | dict[str, PackagesDiffOut] | None = Field(
        default=None,
        description="the SBOM's package diff against the previous approved tag (none: every "
        "package is added): one diff for a single platform, else one per architecture (a "
        "platform of no known architecture under its digest); null when the digest's SBOM, "
        "or the previous tag's, has no packages to compare",
    )
    checked_at: datetime | None = None


class FindingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(validation_alias="osv_id")
    package: str
    ecosystem: str
    installed: str
    fixed_in: str | None
    severity: Severity
    aliases: list[str]
    digest: str = Field(description="the platform manifest whose SBOM holds the package")


class UnrecallIn(BaseModel):
    model_config = STRICT_INPUT

    tag: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    notes: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
