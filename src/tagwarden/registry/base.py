"""What every registry client returns, the interface they share, and their errors.

The monitor only ever sees these types, so Docker Hub's Hub API and OCI registries are
interchangeable behind :class:`RegistryClient`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from tagwarden.platforms import normalise_architecture
from tagwarden.references import is_tag, shown

log = logging.getLogger("tagwarden.registry")


def is_attestation(architecture: str | None, os: str | None) -> bool:
    """BuildKit lists provenance/SBOM manifests as platform ``unknown/unknown``: not an image."""
    return (architecture or "").lower() == "unknown" and (os or "").lower() == "unknown"


def parse_timestamp(value: object) -> datetime | None:
    """RFC 3339 with 0, 6 or 9 fractional digits (registries send all three) → aware UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedResponse("a timestamp is not a string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        # The value is the registry's text: it is not repeated where people read errors.
        raise MalformedResponse("a timestamp is not RFC 3339") from exc
    if parsed.tzinfo is None:
        # Registries write UTC; a missing offset is sloppiness, not local time.
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Platform:
    """One architecture's image within a tag. ``size`` is the compressed size where known."""

    architecture: str
    os: str
    digest: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class RemoteTag:
    """A tag as the registry sees it now.

    ``digest`` is the tag's own digest: the index/manifest list for a multi-arch tag. When
    ``resolved`` is false only ``name`` and ``digest`` are known (a cheap HEAD); call
    :meth:`RegistryClient.resolve_tag` for platforms and date. A resolved tag with platforms
    but no digest is a Hub API entry that did not say its index digest: see
    :meth:`RegistryClient.tag_digest`.
    """

    name: str
    digest: str | None
    last_updated: datetime | None
    platforms: tuple[Platform, ...]
    resolved: bool
    # What the registry says of the tag beyond that, kept for the reviewer (None: not said).
    full_size: int | None = None
    media_type: str | None = None
    pushed_by: str | None = None
    # What a registry's own API said beyond that (Harbor's scan overview and build attributes),
    # kept as evidence for the reviewer.
    evidence: dict[str, Any] | None = field(default=None, compare=False)
    # Derived from ``platforms`` once: a scan reads them several times for thousands of tags.
    architectures: list[str] = field(init=False, repr=False, compare=False)
    platform_digests: dict[str, str] = field(init=False, repr=False, compare=False)
    """Architecture → that platform's manifest digest.

    Multi-OS tags (official images ship Windows builds beside Linux ones) have two entries for
    ``amd64``; devices run Linux, so the Linux one wins.
    """

    def __post_init__(self) -> None:
        digests: dict[str, str] = {}
        for platform in sorted(self.platforms, key=lambda p: p.os != "linux"):
            if platform.digest is not None:
                digests.setdefault(platform.architecture, platform.digest)
        object.__setattr__(self, "architectures", sorted({p.architecture for p in self.platforms}))
        object.__setattr__(self, "platform_digests", digests)


def platforms_from(
    entries: list[tuple[str, str, str | None, str | None, int | None]],
) -> tuple[Platform, ...]:
    """(architecture, os, variant, digest, size) rows → normalised platforms, attestations gone."""
    return tuple(
        Platform(normalise_architecture(arch, variant), os.lower(), digest, size)
        for arch, os, variant, digest, size in entries
        if not is_attestation(arch, os)
    )


class TagNames:
    """The tag grammar at the registry boundary: names outside it are dropped from a listing.

    A registry may list anything as a tag (``<script>…``, ``../../``, 300 characters, a
    newline). Such a name never becomes a discovered tag, a request, or part of a URL we send;
    one listing warns once, with how many were dropped and one example, repr'd and cut short.
    """

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self.dropped = 0
        self.example: str | None = None

    def admit(self, name: str) -> bool:
        if is_tag(name):
            return True
        self.dropped += 1
        if self.example is None:
            self.example = shown(name)
        return False

    def report(self) -> None:
        if self.dropped:
            log.warning(
                "%s: dropped %d tag name(s) outside the tag grammar, e.g. %s",
                self.repository,
                self.dropped,
                self.example,
            )
            self.dropped = 0


def refuse_bad_tag(repository: str, tag: str) -> None:
    """Resolving a name outside the grammar is refused before any request is built from it."""
    if not is_tag(tag):
        raise MalformedResponse(f"{repository}: {shown(tag)} is not a valid tag name")


@runtime_checkable
class RegistryClient(Protocol):
    """List an image's tags and resolve one tag, whatever kind of registry serves it.

    ``repository`` is ``namespace/image_name`` (``library/redis`` for Docker Hub official
    images; the namespace may contain slashes). ``known`` maps tag names already seen to
    their last known digest, which lets a client skip work for unchanged tags. ``worth``, when
    given, says which listed tags are worth a request of their own: a client whose listing
    names tags without their digests (OCI's ``tags/list``) asks only about those, and yields
    the others unresolved with their ``known`` digest (None for a tag never looked at). A
    client whose listing already carries the details may ignore it.
    """

    def iter_tags(
        self,
        repository: str,
        known: Mapping[str, str | None],
        *,
        worth: Callable[[str], bool] | None = None,
    ) -> AsyncIterator[RemoteTag]: ...

    async def resolve_tag(self, repository: str, tag: str) -> RemoteTag: ...

    async def tag_digest(self, repository: str, tag: str) -> str:
        """The tag's own digest, from one registry HEAD (for a listed tag that came without)."""
        ...

    def budget(self) -> int | None:
        """Remaining rate-limit budget last reported by this client's host, if any."""
        ...


class RegistryError(Exception):
    """Anything that stopped a registry request from giving a usable answer."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ImageNotFound(RegistryError):
    """404: the repository (or tag) does not exist, or is hidden from these credentials."""


class MalformedResponse(RegistryError):
    """The registry answered, but with a body or header this client cannot read."""


class RegistryUnavailable(RegistryError):
    """5xx, timeouts or connection errors outlasted every retry."""


class RateLimited(RegistryUnavailable):
    """The host asked us to wait longer than we are willing to, or retries ran out on 429s.

    ``retry_at`` (aware UTC) is when the host said it would take requests again.
    """

    def __init__(self, message: str, *, retry_at: datetime, url: str | None = None):
        super().__init__(message, url=url, status=429)
        self.retry_at = retry_at


class AuthenticationFailed(RegistryError):
    """Credentials were refused, or the registry wants credentials we do not have."""


class HostNotAllowed(RegistryError):
    """The image names a registry host that is not allowed: no request is sent."""
