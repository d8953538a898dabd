"""Severities (pure): from a record's CVSS vectors or its own words, ranked
critical > high > medium > low > unknown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"


RANK = {
    Severity.UNKNOWN: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}

# What distributions and advisory databases write in database_specific / ecosystem_specific:
# GitHub's "moderate", Red Hat's "important", Debian's "unimportant" and "negligible".
_WORDS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.LOW,
    "unimportant": Severity.LOW,
    "minor": Severity.LOW,
}


def rank(severity: str) -> int:
    return RANK.get(Severity(severity) if severity in RANK else Severity.UNKNOWN, 0)


def from_score(score: float) -> Severity:
    """CVSS's own qualitative scale (v3.x and v4.0 share it); a score of 0.0 is "none"."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.UNKNOWN


def from_vector(kind: str, vector: str) -> Severity:
    try:
        if kind == "CVSS_V4":
            return from_score(float(CVSS4(vector).base_score))
        if kind == "CVSS_V3":
            return from_score(float(CVSS3(vector).base_score))
    except (CVSSError, ValueError, KeyError, IndexError):
        return Severity.UNKNOWN
    return Severity.UNKNOWN


def from_words(specific: Any) -> Severity:
    """``{"severity": "HIGH"}`` (or a list of such, as some databases write), in any case."""
    if not isinstance(specific, Mapping):
        return Severity.UNKNOWN
    said = specific.get("severity")
    if isinstance(said, list) and said:
        said = said[0].get("severity") if isinstance(said[0], Mapping) else said[0]
    if not isinstance(said, str):
        return Severity.UNKNOWN
    return _WORDS.get(said.strip().lower(), Severity.UNKNOWN)


def highest(severities: Iterable[str]) -> Severity:
    best = Severity.UNKNOWN
    for severity in severities:
        if rank(severity) > RANK[best]:
            best = Severity(severity)
    return best


def record_severity(record: Mapping[str, Any]) -> Severity:
    """The highest CVSS v4/v3 base severity among the record's vectors; else its
    ``database_specific`` severity; else unknown."""
    scored = [
        from_vector(str(s.get("type")), str(s.get("score")))
        for s in record.get("severity") or []
        if isinstance(s, Mapping)
    ]
    found = highest(scored)
    if found is not Severity.UNKNOWN:
        return found
    return from_words(record.get("database_specific"))


def affected_severity(record_level: Severity, affected: Mapping[str, Any]) -> Severity:
    """An affected entry's own CVSS or ecosystem_specific severity, else the record's."""
    own = highest(
        from_vector(str(s.get("type")), str(s.get("score")))
        for s in affected.get("severity") or []
        if isinstance(s, Mapping)
    )
    if own is Severity.UNKNOWN:
        own = from_words(affected.get("ecosystem_specific"))
    if own is Severity.UNKNOWN:
        own = from_words(affected.get("database_specific"))
    return own if own is not Severity.UNKNOWN else record_level
