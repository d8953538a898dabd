"""Whether an approval rule approves a tag, and from when (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from tagwarden import patterns
from tagwarden.approvals.metadata import parse_timestamp
from tagwarden.versions import VersionRange, is_minor_bump, is_patch_bump, newest, parse


def check_pattern(kind: str, pattern: str | None) -> str | None:
    """The pattern a rule of ``kind`` needs, checked; raises ValueError saying what is wrong."""
    if kind in ("patch", "minor"):
        if pattern:
            raise ValueError(f"a {kind} rule takes no pattern: it compares with the newest tag")
        return None
    if not pattern:
        raise ValueError(f"a {kind} rule needs a pattern")
    if kind == "range":
        return str(VersionRange.parse(pattern))
    if kind == "regex":
        return patterns.check(pattern)  # a PatternError is a ValueError, saying why
    raise ValueError(f"unknown rule kind {kind!r}")


def matches(kind: str, pattern: str | None, tag: str, activated: Iterable[str]) -> bool:
    """``patch``/``minor``: a bump of the newest activated tag of the same variant; ``range``:
    the tag's version is inside; ``regex``: the whole tag matches."""
    if kind == "regex":
        return pattern is not None and patterns.fullmatch(pattern, tag)
    version = parse(tag)
    if version is None:
        return False
    if kind == "range":
        return pattern is not None and VersionRange.parse(pattern).contains(version)
    known = (parse(t) for t in activated)
    base = newest((v for v in known if v is not None), variant=version.variant)
    if base is None:  # nothing activated of this variant: there is nothing to be a bump of
        return False
    if kind == "patch":
        return is_patch_bump(version, base)
    if kind == "minor":
        return is_minor_bump(version, base)
    return False


def released_at(metadata: Mapping[str, Any], requested_at: datetime) -> datetime:
    """The registry's date where it gives one, tagwarden's first sighting otherwise (GHCR,
    Quay and ECR list no dates), and the request's own time as a last resort."""
    for key in ("last_updated", "first_seen"):
        when = parse_timestamp(metadata.get(key))
        if when is not None:
            return when
    return requested_at


def due_at(released: datetime, min_age_hours: int) -> datetime:
    return released + timedelta(hours=min_age_hours)
