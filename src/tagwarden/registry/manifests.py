"""Reading OCI / Docker manifests, indexes and image configs (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tagwarden.registry.base import MalformedResponse, is_attestation, parse_timestamp

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# All four, or distribution answers 404 for a stored type we did not list.
ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
CREATED_ANNOTATION = "org.opencontainers.image.created"
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
# Reproducible builds stamp 1970-01-01 (or Go's year 1): not when the image was made.
_EPOCH_LIKE_BEFORE = datetime(1981, 1, 1, tzinfo=UTC)


def sha256_digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def meaningful_time(value: object) -> datetime | None:
    when = parse_timestamp(value)
    return None if when is None or when < _EPOCH_LIKE_BEFORE else when


@dataclass(frozen=True, slots=True)
class IndexEntry:
    digest: str
    media_type: str | None
    architecture: str
    os: str
    variant: str | None


@dataclass(frozen=True, slots=True)
class ImageManifest:
    config_digest: str
    size: int  # config + layers, compressed: what a device downloads
    created: datetime | None  # from the manifest's annotations, if any


@dataclass(frozen=True, slots=True)
class Blob:
    """A content-addressed blob a device pulls: a layer, or the image config."""

    digest: str
    size: int  # compressed bytes, as the manifest's descriptor says


@dataclass(frozen=True, slots=True)
class ImageBlobs:
    """One platform manifest's blobs: what a device of that platform downloads to run it."""

    config: Blob
    layers: tuple[Blob, ...]

    @property
    def compressed_bytes(self) -> int:
        """Config plus every layer, as the manifest lists them: the image's compressed size."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def distinct(self) -> dict[str, int]:
        """Digest → size, each blob once: a layer listed twice is downloaded once."""
        blobs = {self.config.digest: self.config.size}
        for layer in self.layers:
            blobs.setdefault(layer.digest, layer.size)
        return blobs


@dataclass(frozen=True, slots=True)
class ImageConfig:
    architecture: str
    os: str
    variant: str | None
    created: datetime | None
    label_created: datetime | None


def media_type_of(content_type: str | None, body: dict[str, Any]) -> str:
    """The manifest's type: the header, else the body's ``mediaType``, else its shape."""
    header = (content_type or "").split(";")[0].strip().lower()
    if header in INDEX_TYPES or header in IMAGE_MANIFEST_TYPES:
        return header
    declared = body.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    # OCI allows mediaType to be absent; the shape still tells an index from a manifest.
    if "manifests" in body:
        return OCI_INDEX
    if "config" in body:
        return OCI_MANIFEST
    return header or "unknown"


def _annotation_time(body: dict[str, Any]) -> datetime | None:
    annotations = body.get("annotations")
    if isinstance(annotations, dict):
        return meaningful_time(annotations.get(CREATED_ANNOTATION))
    return None


def parse_index(body: dict[str, Any]) -> tuple[list[IndexEntry], datetime | None]:
    """Image entries (attestations dropped) and the index's own created annotation."""
    manifests = body.get("manifests")
    if not isinstance(manifests, list):
        raise MalformedResponse("index without a manifests list")
    entries = []
    for item in manifests:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            raise MalformedResponse("index entry without a digest")
        platform = _object(item.get("platform"))
        annotations = _object(item.get("annotations"))
        arch = str(platform.get("architecture") or "unknown")
        os = str(platform.get("os") or "unknown")
        if is_attestation(arch, os) or _ATTESTATION_ANNOTATION in annotations:
            continue
        variant = platform.get("variant")
        media_type = item.get("mediaType")
        entries.append(
            IndexEntry(
                digest=item["digest"],
                media_type=media_type if isinstance(media_type, str) else None,
                architecture=arch,
                os=os,
                variant=variant if isinstance(variant, str) else None,
            )
        )
    return entries, _annotation_time(body)


def parse_image_manifest(body: dict[str, Any]) -> ImageManifest:
    config = body.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise MalformedResponse("image manifest without a config descriptor")
    layers = body.get("layers") or []
    if not isinstance(layers, list):
        raise MalformedResponse("image manifest layers is not a list")
    size = _size(config)
    for layer in layers:
        size += _size(layer)
    return ImageManifest(config["digest"], size, _annotation_time(body))


def parse_image_blobs(body: dict[str, Any]) -> ImageBlobs:
    """The config and layer descriptors of an image manifest, in the manifest's order."""
    config = body.get("config")
    layers = body.get("layers") or []
    if not isinstance(layers, list):
        raise MalformedResponse("image manifest layers is not a list")
    return ImageBlobs(_blob(config), tuple(_blob(layer) for layer in layers))


def _blob(descriptor: object) -> Blob:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise MalformedResponse("descriptor without a digest")
    size = _size(descriptor)
    if size < 0:
        raise MalformedResponse("descriptor with a negative size")
    return Blob(descriptor["digest"], size)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _size(descriptor: object) -> int:
    if (
        isinstance(descriptor, dict)
        and isinstance(descriptor.get("size"), int)
        and not isinstance(descriptor.get("size"), bool)
    ):
        return int(descriptor["size"])
    raise MalformedResponse("descriptor without a size")


def parse_image_config(body: dict[str, Any]) -> ImageConfig:
    arch = body.get("architecture")
    os = body.get("os")
    if not isinstance(arch, str) or not isinstance(os, str):
        raise MalformedResponse("image config without architecture/os")
    variant = body.get("variant")
    labels = _object(_object(body.get("config")).get("Labels"))
    return ImageConfig(
        architecture=arch,
        os=os,
        variant=variant if isinstance(variant, str) else None,
        created=meaningful_time(body.get("created")),
        label_created=meaningful_time(labels.get(CREATED_ANNOTATION)),
    )


def pick_representative(entries: list[IndexEntry]) -> IndexEntry | None:
    """The platform whose config dates the whole tag: linux/amd64 when there is one."""
    for entry in entries:
        if entry.os == "linux" and entry.architecture == "amd64":
            return entry
    return entries[0] if entries else None
