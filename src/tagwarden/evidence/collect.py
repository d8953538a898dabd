"""Reading a digest's signatures from its registry and judging them (registry I/O only).

Nothing here touches the database: callers load the keys first, call :func:`check_signature`
with no transaction open, and store the result afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from tagwarden.db import utcnow
from tagwarden.evidence.schemas import SignatureEvidence, SignatureStatus, SignedAt
from tagwarden.evidence.signatures import (
    LoadedKey,
    Outcome,
    SignatureLayer,
    Verdict,
    judge,
    layers_of,
    platforms_all_signed,
    referrers_tag,
    signature_referrers,
    signature_tag,
)
from tagwarden.platforms import normalise_architecture
from tagwarden.registry.base import RegistryClient, RegistryError, is_attestation
from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.manifests import INDEX_TYPES, parse_index
from tagwarden.registry.oci import OciClient

log = logging.getLogger(__name__)

# A simple-signing payload is a few hundred bytes; anything near this is not one.
MAX_PAYLOAD_BYTES = 64 * 1024
# Bounds on what one hostile registry can make a check fetch.
MAX_SIGNATURE_MANIFESTS = 16
MAX_LAYERS = 32
MAX_PLATFORMS = 64


def reader_for(client: RegistryClient) -> OciClient | None:
    """The registry API that holds an image's artifacts: the client itself for an OCI
    registry, Docker Hub's registry behind the Hub API client."""
    if isinstance(client, OciClient):
        return client
    if isinstance(client, DockerHubClient):
        return client.registry
    return None


async def signature_layers(reader: OciClient, repository: str, digest: str) -> list[SignatureLayer]:
    """Every cosign signature of ``digest``: under its ``.sig`` tag, and among its referrers
    (the OCI 1.1 API, or the ``sha256-<hex>`` fallback tag where the registry has none)."""
    manifests = []
    tagged = await reader.artifact_manifest(repository, signature_tag(digest))
    if tagged is not None:
        manifests.append(tagged[0])
    index = await reader.referrers(repository, digest)
    if index is None:
        fallback = await reader.artifact_manifest(repository, referrers_tag(digest))
        index = fallback[0] if fallback is not None and fallback[1] in INDEX_TYPES else None
    seen: set[str] = set()
    for referrer in signature_referrers(index or {})[:MAX_SIGNATURE_MANIFESTS]:
        if referrer in seen:
            continue
        seen.add(referrer)
        found = await reader.artifact_manifest(repository, referrer)
        if found is not None:
            manifests.append(found[0])
    layers: list[SignatureLayer] = []
    for manifest in manifests:
        for blob_digest, _size, notes in layers_of(manifest):
            if len(layers) >= MAX_LAYERS:
                break
            payload = await reader.blob(repository, blob_digest, max_bytes=MAX_PAYLOAD_BYTES)
            layers.append(SignatureLayer(payload, notes))
    return layers


async def _verdict(
    reader: OciClient, repository: str, digest: str, keys: Mapping[str, LoadedKey]
) -> Verdict:
    return judge(await signature_layers(reader, repository, digest), digest, keys)


async def check_signature(
    client: RegistryClient,
    repository: str,
    digest: str,
    keys: Mapping[str, LoadedKey],
    *,
    now: datetime | None = None,
) -> SignatureEvidence:
    """The signature evidence of ``digest``: signed at the digest itself (``index``), or, for
    a multi-platform index that is not, at every one of its platform manifests (``platforms``).
    A registry failure is an ``error`` with tagwarden's own words, never an exception."""
    checked_at = now or utcnow()
    reader = reader_for(client)
    if reader is None:
        return SignatureEvidence(
            status=SignatureStatus.ERROR,
            reason="this registry's client cannot read signatures",
            checked_at=checked_at,
        )
    try:
        top = await _verdict(reader, repository, digest, keys)
        if top.outcome is not None:
            return _evidence(top, SignedAt.INDEX, checked_at)
        platforms = await _platform_digests(reader, repository, digest)
        if not platforms:
            return SignatureEvidence(status=SignatureStatus.UNSIGNED, checked_at=checked_at)
        verdicts = {
            arch: await _verdict(reader, repository, d, keys) for arch, d in platforms.items()
        }
    except RegistryError as exc:
        log.warning("signature check of %s@%s failed: %s", repository, digest, exc)
        return SignatureEvidence(
            status=SignatureStatus.ERROR, reason=str(exc)[:500], checked_at=checked_at
        )
    failed = [v for v in verdicts.values() if v.outcome not in (None, Outcome.VERIFIED)]
    if failed:
        return _evidence(failed[0], SignedAt.PLATFORMS, checked_at)
    unsigned = sorted(arch for arch, v in verdicts.items() if v.outcome is None)
    if unsigned:
        some = len(unsigned) < len(verdicts)
        return SignatureEvidence(
            status=SignatureStatus.UNSIGNED,
            reason=f"not signed: {', '.join(unsigned)}" if some else None,
            checked_at=checked_at,
        )
    signers = platforms_all_signed(list(verdicts.values()))
    if not signers:
        return SignatureEvidence(
            status=SignatureStatus.INVALID,
            reason=Outcome.UNKNOWN_KEY.value,
            signed=SignedAt.PLATFORMS,
            checked_at=checked_at,
        )
    return SignatureEvidence(
        status=SignatureStatus.VERIFIED,
        signers=list(signers),
        signed_digest=digest,
        signed=SignedAt.PLATFORMS,
        platforms={arch: platforms[arch] for arch in sorted(platforms)},
        checked_at=checked_at,
    )


async def _platform_digests(reader: OciClient, repository: str, digest: str) -> dict[str, str]:
    """Architecture → manifest digest of an index (attestations left out); {} for a manifest."""
    found = await reader.artifact_manifest(repository, digest)
    if found is None or found[1] not in INDEX_TYPES:
        return {}
    entries, _ = parse_index(found[0])
    platforms: dict[str, str] = {}
    for entry in entries[:MAX_PLATFORMS]:
        if is_attestation(entry.architecture, entry.os):
            continue
        platforms.setdefault(
            normalise_architecture(entry.architecture, entry.variant), entry.digest
        )
    return platforms


def _evidence(verdict: Verdict, signed: SignedAt, checked_at: datetime) -> SignatureEvidence:
    if verdict.outcome is Outcome.VERIFIED:
        return SignatureEvidence(
            status=SignatureStatus.VERIFIED,
            signers=list(verdict.signers),
            signed_digest=verdict.signed_digest,
            signed=signed,
            checked_at=checked_at,
        )
    return SignatureEvidence(
        status=SignatureStatus.INVALID,
        signers=[],
        signed_digest=verdict.signed_digest,
        signed=signed,
        reason=verdict.outcome.value if verdict.outcome else None,
        checked_at=checked_at,
    )
