"""How an SBOM of one platform digest was obtained; the evidence's ``vulnerabilities.status``
derives from it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class SbomStatus(StrEnum):
    # The image carried its own SBOM (an in-toto attestation in its index, or a referrer).
    FOUND = "found"
    # Syft catalogued the image from the registry.
    GENERATED = "generated"
    # Neither: no attestation, and Syft is disabled or found no package database.
    NO_SBOM = "no_sbom"
    # Syft failed, timed out or was refused by the registry; retried on the next check.
    ERROR = "error"


class SbomSource(StrEnum):
    ATTESTATION = "attestation"
    REFERRER = "referrer"
    SYFT = "syft"


# A stored SBOM is final (a digest's content never changes), except an error, which the next
# check replaces with whatever it finds. The upsert in sbom.py writes exactly this table.
TRANSITIONS: Final[Mapping[SbomStatus, frozenset[SbomStatus]]] = {
    SbomStatus.FOUND: frozenset(),
    SbomStatus.GENERATED: frozenset(),
    SbomStatus.NO_SBOM: frozenset(),
    SbomStatus.ERROR: frozenset(SbomStatus),
}


def needs_acquiring(status: str | None) -> bool:
    """Whether a check must (again) look for this digest's SBOM: never stored, or an error."""
    return status is None or bool(TRANSITIONS[SbomStatus(status)])


class ScanStatus(StrEnum):
    """The evidence's ``vulnerabilities.status``."""

    # Some platform's SBOM was matched against the OSV data.
    SCANNED = "scanned"
    # No platform has an SBOM (none attached, none could be generated).
    NO_SBOM = "no_sbom"
    # Obtaining the SBOM failed; retried on the next check.
    ERROR = "error"
    # No OSV data has been imported: there is nothing to match against.
    DISABLED = "disabled"
