"""Checking and reading an approval request's metadata (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tagwarden import references
from tagwarden.errors import InvalidInput

ARCHITECTURE_MAX = 32


def parse_timestamp(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            # Converting year 1 or 9999 with an offset to UTC leaves the calendar.
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def architectures(metadata: dict[str, Any]) -> list[str]:
    """The architectures to activate, in the order the metadata lists them, without repeats."""
    seen: dict[str, None] = {}
    for arch in metadata.get("architectures") or []:
        if isinstance(arch, str) and arch:
            seen.setdefault(arch, None)
    return list(seen)


def platform_digest(metadata: dict[str, Any], arch: str) -> str | None:
    platforms = metadata.get("platforms")
    if isinstance(platforms, dict):
        value = platforms.get(arch)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("digest"), str):
            return str(value["digest"])
    return None


def validate(metadata: dict[str, Any], *, require_architectures: bool) -> dict[str, Any]:
    """Refuse metadata that activation could not use, with a message that says why."""
    archs = metadata.get("architectures")
    if archs is not None and (
        not isinstance(archs, list)
        or not all(isinstance(a, str) and 0 < len(a) <= ARCHITECTURE_MAX for a in archs)
    ):
        raise InvalidInput("metadata.architectures must be a list of architecture names")
    if require_architectures and not archs:
        raise InvalidInput(
            "metadata.architectures is required: activation creates one image_tags row per "
            'architecture (e.g. ["amd64", "arm64"])'
        )
    digest = metadata.get("digest")
    if digest is not None:
        error = references.digest_error(digest) if isinstance(digest, str) else "bad digest"
        if error:
            raise InvalidInput(f"metadata.{error}")
    last_updated = metadata.get("last_updated")
    if last_updated is not None and parse_timestamp(last_updated) is None:
        raise InvalidInput("metadata.last_updated must be an ISO 8601 timestamp")
    platforms = metadata.get("platforms")
    if platforms is not None:
        if not isinstance(platforms, dict):
            raise InvalidInput("metadata.platforms must map architecture to digest")
        for arch in platforms:
            digest = platform_digest(metadata, arch)
            error = references.digest_error(digest) if digest else "no digest"
            if error:
                raise InvalidInput(f"metadata.platforms.{arch}: {error}")
    _refuse_unstorable(metadata, "metadata")
    return metadata


def _refuse_unstorable(value: object, where: str) -> None:
    """NaN/Infinity and NUL characters are not JSON that PostgreSQL's JSONB can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where} holds a non-finite number")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(f"{where} holds a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key, where)
            _refuse_unstorable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unstorable(item, f"{where}[{index}]")
