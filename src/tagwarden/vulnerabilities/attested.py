"""Reading an image's own SBOM from its registry (registry I/O only, no database): BuildKit's
in-toto attestations inside the index, then SPDX/CycloneDX referrers of the platform manifest
(the OCI 1.1 API, or its ``sha256-<hex>`` fallback tag)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from tagwarden.platforms import normalise_architecture
from tagwarden.registry.base import MalformedResponse, is_attestation
from tagwarden.registry.manifests import INDEX_TYPES
from tagwarden.registry.oci import OciClient
from tagwarden.vulnerabilities import cyclonedx, spdx
from tagwarden.vulnerabilities.packages import Package
from tagwarden.vulnerabilities.states import SbomSource

IN_TOTO_LAYER: Final = "application/vnd.in-toto+json"
PREDICATE_ANNOTATION: Final = "in-toto.io/predicate-type"
REFERENCE_TYPE: Final = "vnd.docker.reference.type"
REFERENCE_DIGEST: Final = "vnd.docker.reference.digest"
# Distribution images' SBOMs run to a few MB; this bounds what a hostile registry can send.
MAX_SBOM_BYTES: Final = 32 * 1024 * 1024
MAX_ENTRIES: Final = 64


@dataclass(frozen=True, slots=True)
class Found:
    """An SBOM document read and parsed: where from, in which format, its packages."""

    source: SbomSource
    format: str
    packages: list[Package]


@dataclass(frozen=True, slots=True)
class Layout:
    """What a tag's digest points at: architecture → platform manifest digest, and platform
    manifest digest → the attestation manifest BuildKit wrote for it."""

    platforms: dict[str, str]
    attestations: dict[str, str] = field(default_factory=dict)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def layout_of(body: dict[str, Any], media_type: str, digest: str) -> Layout:
    """The platforms and attestations an index lists; a single manifest is its own platform
    (architecture unknown here, so keyed by its digest)."""
    if media_type not in INDEX_TYPES:
        return Layout({digest: digest})
    platforms: dict[str, str] = {}
    attestations: dict[str, str] = {}
    entries = body.get("manifests")
    for entry in (entries if isinstance(entries, list) else [])[:MAX_ENTRIES]:
        entry = _object(entry)
        if not isinstance(entry.get("digest"), str):
            continue
        notes = _object(entry.get("annotations"))
        platform = _object(entry.get("platform"))
        if notes.get(REFERENCE_TYPE) == "attestation-manifest":
            described = notes.get(REFERENCE_DIGEST)
            if isinstance(described, str):
                attestations[described] = entry["digest"]
            continue
        arch, os = platform.get("architecture"), platform.get("os")
        if is_attestation(str(arch), str(os)) or not isinstance(arch, str):
            continue
        # Devices run Linux: the Windows builds official images ship beside are never deployed.
        if str(os or "linux").lower() != "linux":
            continue
        variant = platform.get("variant")
        key = normalise_architecture(arch, variant if isinstance(variant, str) else None)
        platforms.setdefault(key, entry["digest"])
    return Layout(platforms, attestations)


async def read_layout(reader: OciClient, repository: str, digest: str) -> Layout:
    found = await reader.artifact_manifest(repository, digest)
    if found is None:
        raise MalformedResponse(f"{repository}@{digest}: no such manifest")
    return layout_of(found[0], found[1], digest)


def parse_document(raw: bytes, source: SbomSource) -> Found | None:
    """An SPDX or CycloneDX JSON document (or an in-toto Statement of one); None for neither."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    try:
        return Found(source, spdx.FORMAT, spdx.packages(document))
    except spdx.NotSpdx:
        pass
    try:
        return Found(source, cyclonedx.FORMAT, cyclonedx.packages(document))
    except cyclonedx.NotCycloneDx:
        return None


def _layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    layers = manifest.get("layers")
    return [_object(x) for x in (layers if isinstance(layers, list) else [])][:MAX_ENTRIES]


async def from_attestation(reader: OciClient, repository: str, attestation: str) -> Found | None:
    """The SBOM among an attestation manifest's in-toto layers (provenance is skipped)."""
    found = await reader.artifact_manifest(repository, attestation)
    if found is None:
        return None
    wanted = (spdx.PREDICATE_TYPE, cyclonedx.PREDICATE_TYPE)
    for layer in _layers(found[0]):
        predicate = _object(layer.get("annotations")).get(PREDICATE_ANNOTATION)
        if layer.get("mediaType") != IN_TOTO_LAYER or predicate not in wanted:
            continue
        if isinstance(layer.get("digest"), str):
            raw = await reader.blob(repository, layer["digest"], max_bytes=MAX_SBOM_BYTES)
            parsed = parse_document(raw, SbomSource.ATTESTATION)
            if parsed is not None:
                return parsed
    return None


SBOM_ARTIFACT_TYPES: Final = spdx.ARTIFACT_TYPES | cyclonedx.ARTIFACT_TYPES


async def _referrers(reader: OciClient, repository: str, digest: str) -> dict[str, Any]:
    index = await reader.referrers(repository, digest)
    if index is None:  # no referrers API: the fallback tag holds an index of the same shape
        fallback = await reader.artifact_manifest(repository, digest.replace(":", "-", 1))
        index = fallback[0] if fallback is not None and fallback[1] in INDEX_TYPES else None
    return index or {}


async def from_referrers(reader: OciClient, repository: str, digest: str) -> Found | None:
    """An SPDX or CycloneDX document pushed as a referrer of the platform manifest."""
    entries = (await _referrers(reader, repository, digest)).get("manifests")
    for entry in (entries if isinstance(entries, list) else [])[:MAX_ENTRIES]:
        entry = _object(entry)
        if entry.get("artifactType") not in SBOM_ARTIFACT_TYPES:
            continue
        if not isinstance(entry.get("digest"), str):
            continue
        found = await reader.artifact_manifest(repository, entry["digest"])
        for layer in _layers(found[0]) if found is not None else []:
            if isinstance(layer.get("digest"), str):
                raw = await reader.blob(repository, layer["digest"], max_bytes=MAX_SBOM_BYTES)
                parsed = parse_document(raw, SbomSource.REFERRER)
                if parsed is not None:
                    return parsed
    return None
