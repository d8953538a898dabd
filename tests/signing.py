"""Cosign signatures made in tests, in the shapes cosign pushes (SUPPLY_CHAIN_FACTS.md).

A signature manifest has one layer per signature: the simple-signing payload as the blob,
``dev.cosignproject.cosign/signature`` its base64 signature, and (cosign's default, with the
transparency log) ``dev.sigstore.cosign/bundle`` whose hashedrekord entry names the payload's
SHA-256 and the signer's public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tagwarden.evidence.signatures import (
    BUNDLE_ANNOTATION,
    COSIGN_ARTIFACT_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"


def new_key() -> ec.EllipticCurvePrivateKey:
    """What ``cosign generate-key-pair`` makes: ECDSA P-256."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def payload(digest: str, reference: str) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, data: bytes) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return base64.b64encode(key.sign(data)).decode()
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def bundle(key: ec.EllipticCurvePrivateKey, signed: bytes, signature: str) -> str:
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(signed).hexdigest()}},
            "signature": {
                "content": signature,
                "publicKey": {"content": base64.b64encode(public_pem(key).encode()).decode()},
            },
        },
    }
    return json.dumps(
        {
            "SignedEntryTimestamp": base64.b64encode(b"not checked by tagwarden").decode(),
            "Payload": {
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "integratedTime": 1764640000,
                "logIndex": 1,
                "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
            },
        }
    )


@dataclass(frozen=True)
class Layer:
    """One signature: the blob to upload, and its descriptor's annotations."""

    blob: bytes
    annotations: dict[str, str]


def signature_layer(
    key: ec.EllipticCurvePrivateKey,
    digest: str,
    reference: str,
    *,
    tamper: bool = False,
) -> Layer:
    """A cosign signature of ``digest``; ``tamper``: the payload changed after signing."""
    signed = payload(digest, reference)
    signature = sign(key, signed)
    blob = signed.replace(b'"optional":null', b'"optional":{"by":"mallory"}') if tamper else signed
    return Layer(
        blob, {SIGNATURE_ANNOTATION: signature, BUNDLE_ANNOTATION: bundle(key, signed, signature)}
    )


def signature_manifest(
    layers: list[tuple[str, int, dict[str, str]]],
    config_digest: str,
    *,
    subject: tuple[str, int, str] | None = None,
) -> dict[str, Any]:
    """The signature manifest: layers are (blob digest, size, annotations). With a
    ``subject`` (digest, size, media type) it is an OCI 1.1 referrer of that manifest."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": EMPTY_CONFIG_TYPE
            if subject
            else "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(EMPTY_CONFIG),
        },
        "layers": [
            {"mediaType": SIMPLE_SIGNING, "digest": d, "size": n, "annotations": a}
            for d, n, a in layers
        ],
    }
    if subject is not None:
        document["artifactType"] = COSIGN_ARTIFACT_TYPE
        digest, size, media_type = subject
        document["subject"] = {"mediaType": media_type, "digest": digest, "size": size}
    return document
