"""The fake registry's records: repositories, their tags, and the artifact and platform images
each tag points at, with the digest and timestamp helpers they are made with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tagwarden.platforms import normalise_architecture

DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
MediaTypes = Literal["oci", "docker"]


def sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def rfc3339(when: datetime, digits: int = 6) -> str:
    """Hub timestamps carry 0, 6 or 9 fractional digits; the fake sends all three."""
    base = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return base + "Z"
    fraction = f"{when.microsecond:06d}" + "000"
    return f"{base}.{fraction[:digits]}Z"


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> PlatformSpec:
        """``linux/arm64/v8`` → PlatformSpec("linux", "arm64", "v8")."""
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"platform must be os/arch[/variant], not {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @property
    def key(self) -> tuple[str, str]:
        return self.os, normalise_architecture(self.architecture, self.variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class PlatformImage:
    spec: PlatformSpec
    digest: str  # the platform's image manifest
    manifest_size: int
    size: int  # config + layers, what Hub reports as the image size
    attestation_digest: str | None = None
    attestation_size: int = 0


@dataclass(frozen=True, slots=True)
class Artifact:
    """What a tag points at: an index/manifest list, or one image manifest."""

    digest: str
    media_type: str
    images: tuple[PlatformImage, ...]
    created: datetime


@dataclass
class TagRecord:
    name: str
    artifact: Artifact
    last_updated: datetime
    hub_id: int
    # False: the Hub API lists this tag without a top-level digest, as it does for old pushes
    # (2021 single-arch tags, rust:1.44.0-slim); the registry API still names it.
    hub_digest: bool = True


@dataclass
class FakeRepository:
    name: str  # namespace/image, namespace may hold slashes
    official: bool
    private: bool
    media_types: MediaTypes
    attestations: bool
    platforms: tuple[PlatformSpec, ...]
    hub_id: int
    tags: dict[str, TagRecord] = field(default_factory=dict)

    def newest_first(self) -> list[TagRecord]:
        return sorted(self.tags.values(), key=lambda t: (-t.last_updated.timestamp(), t.name))


def version_tag(index: int) -> str:
    """0 → 1.0.0, 1 → 1.0.1 … 999 → 10.9.9: distinct, ordered, realistic-looking names."""
    return f"{1 + index // 100}.{(index // 10) % 10}.{index % 10}"
