"""Cosign signatures: reading public keys, and checking signature layers (pure, no I/O).

A cosign signature is a layer whose blob is the "simple signing" payload and whose annotation
``dev.cosignproject.cosign/signature`` is the base64 signature of the blob's exact bytes. The
signature is checked over those bytes, then the payload must name the digest under review.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
COSIGN_TYPE = "cosign container image signature"
# What cosign gives the manifest of a signature pushed as an OCI 1.1 referrer.
COSIGN_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}


def signature_tag(digest: str) -> str:
    """cosign's tag for the signatures of ``sha256:<hex>``: ``sha256-<hex>.sig``."""
    return digest.replace(":", "-", 1) + ".sig"


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 fallback tag for a registry without the referrers API: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


@dataclass(frozen=True, slots=True)
class LoadedKey:
    key: PublicKey
    algorithm: str
    fingerprint: str  # SHA-256 of the DER SubjectPublicKeyInfo


def load_public_key(pem: str) -> LoadedKey:
    """A PEM ``PUBLIC KEY`` tagwarden can verify with; ValueError saying why otherwise."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("public_key is not a PEM PUBLIC KEY") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _CURVES.get(key.curve.name)
        if algorithm is None:
            raise ValueError("public_key: only the P-256, P-384 and P-521 curves are supported")
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "ed25519"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("public_key: an RSA key must have at least 2048 bits")
        algorithm = f"rsa-{key.key_size}"
    else:
        raise ValueError("public_key: only ECDSA, Ed25519 and RSA keys are supported")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return LoadedKey(key, algorithm, hashlib.sha256(der).hexdigest())


def verifies(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """cosign's schemes: ECDSA over SHA-256 (DER), Ed25519, RSA PKCS#1 v1.5 or PSS over SHA-256."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, payload, pss, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One signature as found in a registry: the payload's bytes and the layer's annotations."""

    payload: bytes
    annotations: Mapping[str, str]


class Outcome(StrEnum):
    VERIFIED = "verified"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    UNKNOWN_KEY = "unknown_key"


@dataclass(frozen=True, slots=True)
class LayerCheck:
    outcome: Outcome
    signers: tuple[str, ...] = ()
    signed_digest: str | None = None


def check_layer(layer: SignatureLayer, digest: str, keys: Mapping[str, LoadedKey]) -> LayerCheck:
    """What one signature says of ``digest``, against the registered keys (name → key)."""
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION, "")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return LayerCheck(Outcome.BAD_SIGNATURE)
    signers = tuple(
        sorted(name for name, k in keys.items() if verifies(k.key, signature, layer.payload))
    )
    if not signers:
        return LayerCheck(_why_not_verified(layer, keys))
    # Only now is the payload the signer's word: read what it names.
    critical = _critical(layer.payload)
    if critical is None or critical.get("type") != COSIGN_TYPE:
        return LayerCheck(Outcome.BAD_SIGNATURE, signers)
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(signed, str):
        return LayerCheck(Outcome.BAD_SIGNATURE, signers)
    if signed != digest:
        return LayerCheck(Outcome.DIGEST_MISMATCH, signers, signed)
    return LayerCheck(Outcome.VERIFIED, signers, signed)


def _critical(payload: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    critical = document.get("critical") if isinstance(document, dict) else None
    return critical if isinstance(critical, dict) else None


def _why_not_verified(layer: SignatureLayer, keys: Mapping[str, LoadedKey]) -> Outcome:
    """A signature no registered key verifies: a tampered payload, or a key nobody registered.

    Key-based cosign signatures carry no key id, so the layer alone cannot tell the two apart.
    cosign's transparency-log bundle (on by default) records the signer's public key and the
    SHA-256 of the payload it signed: a registered key named there, or a payload whose hash is
    not the one recorded, means the bytes changed after signing. The bundle only chooses the
    reason; it never makes a signature count.
    """
    entry = _bundle_entry(layer.annotations.get(BUNDLE_ANNOTATION))
    if entry is None:
        return Outcome.UNKNOWN_KEY
    recorded_hash, recorded_key = entry
    if recorded_hash is not None and recorded_hash != hashlib.sha256(layer.payload).hexdigest():
        return Outcome.BAD_SIGNATURE
    if recorded_key is not None:
        try:
            named = load_public_key(recorded_key).fingerprint
        except ValueError:
            return Outcome.UNKNOWN_KEY
        if any(k.fingerprint == named for k in keys.values()):
            return Outcome.BAD_SIGNATURE
    return Outcome.UNKNOWN_KEY


def _bundle_entry(raw: str | None) -> tuple[str | None, str | None] | None:
    """(payload SHA-256 hex, signer's PEM) from a ``hashedrekord`` entry in cosign's bundle."""
    if not raw:
        return None
    try:
        bundle = json.loads(raw)
        body = json.loads(base64.b64decode(bundle["Payload"]["body"]))
        spec = body["spec"]
        value = spec.get("data", {}).get("hash", {}).get("value")
        key = spec.get("signature", {}).get("publicKey", {}).get("content")
        pem = base64.b64decode(key).decode() if isinstance(key, str) else None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None
    return (value if isinstance(value, str) else None), pem


@dataclass(frozen=True, slots=True)
class Verdict:
    """The signatures of one digest, summed up."""

    outcome: Outcome | None  # None: no signature at all
    signers: tuple[str, ...] = ()
    signed_digest: str | None = None


# When several signatures fail, the most telling reason is the one reported.
_PRIORITY = (Outcome.DIGEST_MISMATCH, Outcome.BAD_SIGNATURE, Outcome.UNKNOWN_KEY)


def judge(layers: Iterable[SignatureLayer], digest: str, keys: Mapping[str, LoadedKey]) -> Verdict:
    checks = [check_layer(layer, digest, keys) for layer in layers]
    if not checks:
        return Verdict(None)
    good = [c for c in checks if c.outcome is Outcome.VERIFIED]
    if good:
        signers = tuple(sorted({s for c in good for s in c.signers}))
        return Verdict(Outcome.VERIFIED, signers, digest)
    worst = min(checks, key=lambda c: _PRIORITY.index(c.outcome))
    return Verdict(worst.outcome, worst.signers, worst.signed_digest)


def layers_of(manifest: Mapping[str, Any]) -> list[tuple[str, int, dict[str, str]]]:
    """The simple-signing layers of a signature manifest: (blob digest, size, annotations)."""
    found: list[tuple[str, int, dict[str, str]]] = []
    layers = manifest.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        digest, size, annotations = layer.get("digest"), layer.get("size"), layer.get("annotations")
        if not isinstance(digest, str) or not isinstance(annotations, dict):
            continue
        found.append(
            (
                digest,
                size if isinstance(size, int) else 0,
                {str(k): str(v) for k, v in annotations.items()},
            )
        )
    return found


def signature_referrers(index: Mapping[str, Any]) -> list[str]:
    """Manifest digests in a referrers answer (or fallback index) that may hold cosign
    signatures: cosign's own artifact type, or entries that say no type (older pushes)."""
    found: list[str] = []
    manifests = index.get("manifests")
    for entry in manifests if isinstance(manifests, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            continue
        kind = entry.get("artifactType")
        if kind in (None, "", COSIGN_ARTIFACT_TYPE, SIMPLE_SIGNING):
            found.append(entry["digest"])
    return found


def platforms_all_signed(checks: Sequence[Verdict]) -> tuple[str, ...]:
    """Keys that signed every platform (what counts for a per-platform signed image)."""
    common: set[str] | None = None
    for check in checks:
        common = set(check.signers) if common is None else common & set(check.signers)
    return tuple(sorted(common or ()))
