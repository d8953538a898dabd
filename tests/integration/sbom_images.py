"""Images built ``FROM scratch`` that hold a distribution's package database, pushed to the
loopback registry layer by layer, optionally with BuildKit's SBOM attestation in the index
(SUPPLY_CHAIN_FACTS.md: ``unknown/unknown`` entry, in-toto SPDX layer)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from tests.integration.real_registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    RealRegistry,
    layer_blob,
    sha256,
)

IN_TOTO = "application/vnd.in-toto+json"

# What ``apk`` writes in /lib/apk/db/installed: one stanza per package, a blank line between.
ALPINE_FILES = {
    "etc/os-release": (
        'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n'
        'PRETTY_NAME="Alpine Linux v3.20"\nHOME_URL="https://alpinelinux.org/"\n'
    ),
    "lib/apk/db/installed": (
        "C:Q1zCQyVhbEEk6lX2Y3YNUBk4AcGbk=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:411323\n"
        "I:649216\nT:the musl c library (libc) implementation\nU:https://musl.libc.org/\n"
        "L:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1712000000\n"
        "c:e69dcd6ac2b8e2ee0ce4e0c3b9d0a7b1a3f4c3d8\nF:lib\nR:libc.musl-x86_64.so.1\n"
        "\n"
        "C:Q1ym3xz3i5Vz2kRb6sFZ5b1CDD0rk=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nS:509116\n"
        "I:955904\nT:Size optimized toolbox of many common UNIX utilities\n"
        "U:https://busybox.net/\nL:GPL-2.0-only\no:busybox\n"
        "m:Sören Tempel <soeren+alpine@soeren-tempel.net>\nt:1712000000\n"
        "c:2ae6a8a9de5d8e6e5a4e1f1b7c3c0e4a5a7f5e2c\nD:so:libc.musl-x86_64.so.1\n"
        "F:bin\nR:busybox\n"
        "\n"
    ),
}

DEBIAN_FILES = {
    "etc/os-release": (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
    ),
    "var/lib/dpkg/status": (
        "Package: libssl3\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
        "Installed-Size: 6012\nMaintainer: Debian OpenSSL Team "
        "<pkg-openssl-devel@alioth-lists.debian.net>\nArchitecture: amd64\n"
        "Multi-Arch: same\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n"
        "Depends: libc6 (>= 2.34)\nDescription: Secure Sockets Layer toolkit - shared libraries\n"
        "\n"
        "Package: zlib1g\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
        "Installed-Size: 168\nMaintainer: Mark Brown <broonie@debian.org>\n"
        "Architecture: amd64\nMulti-Arch: same\nSource: zlib\n"
        "Version: 1:1.2.13.dfsg-1\nDescription: compression library - runtime\n"
        "\n"
    ),
}


@dataclass(frozen=True)
class Built:
    digest: str  # the index under the tag
    platform: str  # its one (amd64) image manifest
    layer: bytes  # that manifest's one layer, as pushed
    platform_size: int
    attestation: str | None = None  # the attestation manifest, when one was pushed


def spdx_statement(subject: str, packages: list[tuple[str, str, str]]) -> dict[str, Any]:
    """BuildKit's SBOM attestation: an in-toto Statement around an SPDX 2.3 document."""
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "pkg:docker/test", "digest": {"sha256": subject.split(":")[1]}}],
        "predicate": {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "sbom",
            "packages": [
                {
                    "name": name,
                    "SPDXID": f"SPDXRef-Package-{name}",
                    "versionInfo": version,
                    "externalRefs": [
                        {
                            "referenceCategory": "PACKAGE-MANAGER",
                            "referenceType": "purl",
                            "referenceLocator": purl,
                        }
                    ],
                }
                for name, version, purl in packages
            ],
        },
    }


def _manifest(
    registry: RealRegistry, repository: str, config: bytes, layers: list[Any]
) -> tuple[str, int]:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": registry.push_blob(repository, config),
            "size": len(config),
        },
        "layers": layers,
    }
    raw = json.dumps(body).encode()
    return registry.push_manifest(repository, sha256(raw), OCI_MANIFEST, raw), len(raw)


def push_image(
    registry: RealRegistry,
    repository: str,
    tag: str,
    files: dict[str, str],
    *,
    attestation: list[tuple[str, str, str]] | None = None,
) -> Built:
    """One amd64 image of ``files`` in a single layer, under an index tagged ``tag``; with
    ``attestation`` (name, version, purl), BuildKit's SBOM attestation of it beside."""
    layer = layer_blob(files)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer))]},
        }
    ).encode()
    descriptor = {
        "mediaType": OCI_LAYER,
        "digest": registry.push_blob(repository, layer),
        "size": len(layer),
    }
    platform, platform_size = _manifest(registry, repository, config, [descriptor])
    entries: list[dict[str, Any]] = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": platform,
            "size": platform_size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }
    ]
    attested = None
    if attestation is not None:
        statement = json.dumps(spdx_statement(platform, attestation)).encode()
        unknown = json.dumps(
            {"architecture": "unknown", "os": "unknown", "config": {}, "rootfs": {}}
        ).encode()
        in_toto = {
            "mediaType": IN_TOTO,
            "digest": registry.push_blob(repository, statement),
            "size": len(statement),
            "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
        }
        attested, attested_size = _manifest(registry, repository, unknown, [in_toto])
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": attested,
                "size": attested_size,
                "annotations": {
                    "vnd.docker.reference.digest": platform,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
                "platform": {"architecture": "unknown", "os": "unknown"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    digest = registry.push_manifest(repository, tag, OCI_INDEX, index.encode())
    return Built(digest, platform, layer, platform_size, attested)


CYCLONEDX = "application/vnd.cyclonedx+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def push_sbom_referrer(registry: RealRegistry, repository: str, built: Built, bom: bytes) -> str:
    """What ``oras attach --artifact-type application/vnd.cyclonedx+json`` pushes to a registry
    without the referrers API: the artifact manifest (``subject``: the platform manifest), and
    the fallback tag ``sha256-<hex>`` listing it."""
    empty = b"{}"
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": CYCLONEDX,
        "config": {
            "mediaType": OCI_EMPTY,
            "digest": registry.push_blob(repository, empty),
            "size": len(empty),
        },
        "layers": [
            {
                "mediaType": CYCLONEDX,
                "digest": registry.push_blob(repository, bom),
                "size": len(bom),
            }
        ],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": built.platform,
            "size": built.platform_size,
        },
    }
    raw = json.dumps(body).encode()
    artifact = registry.push_manifest(repository, sha256(raw), OCI_MANIFEST, raw)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": artifact,
                "size": len(raw),
                "artifactType": CYCLONEDX,
            }
        ],
    }
    fallback = built.platform.replace(":", "-", 1)
    registry.push_manifest(repository, fallback, OCI_INDEX, json.dumps(index).encode())
    return artifact
