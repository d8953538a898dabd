"""SBOM documents → stored packages: SPDX (attestations, Syft), CycloneDX, and the OSV
ecosystem each purl names (SUPPLY_CHAIN_FACTS.md's shapes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tagwarden.vulnerabilities import cyclonedx, spdx
from tagwarden.vulnerabilities.attested import Layout, layout_of, parse_document
from tagwarden.vulnerabilities.packages import ecosystem_of, package, parse_purl
from tagwarden.vulnerabilities.states import SbomSource, SbomStatus, needs_acquiring

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
AMD64 = "sha256:" + "a" * 64
ARM64 = "sha256:" + "b" * 64
ATTESTATION = "sha256:" + "c" * 64
WINDOWS = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    ("purl", "ecosystem"),
    [
        ("pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.20", "Alpine:v3.20"),
        ("pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64&distro=alpine-3.18.4", "Alpine:v3.18"),
        ("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", "Debian:12"),
        ("pkg:deb/debian/libc6@2.36-9?distro=debian-12.5", "Debian:12"),
        ("pkg:deb/ubuntu/bash@5.1-6ubuntu1?distro=ubuntu-22.04", "Ubuntu:22.04:LTS"),
        ("pkg:deb/ubuntu/bash@5.2-1?distro=ubuntu-23.10", "Ubuntu:23.10"),
        ("pkg:pypi/requests@2.31.0", "PyPI"),
        ("pkg:npm/%40angular/core@16.0.0", "npm"),
        ("pkg:golang/github.com/x/y@v1.0.0", "Go"),
        # A distribution package whose release nobody said cannot be matched: no ecosystem.
        ("pkg:apk/alpine/musl@1.2.4-r2", None),
        ("pkg:rpm/redhat/bash@5.1?distro=rhel-9", None),
    ],
)
def test_the_osv_ecosystem_comes_from_the_purl_and_its_distro(
    purl: str, ecosystem: str | None
) -> None:
    parsed = parse_purl(purl)
    assert parsed is not None
    assert ecosystem_of(parsed) == ecosystem


def test_a_binary_package_keeps_its_source_package_from_the_upstream_qualifier() -> None:
    item = package(
        "libssl3",
        "3.0.11-1~deb12u2",
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl%403.0.11-1",
    )
    assert item is not None
    assert (item["name"], item["source"], item["ecosystem"]) == ("libssl3", "openssl", "Debian:12")


def test_the_image_itself_and_versionless_entries_are_not_packages() -> None:
    assert package("img", "sha256:abc", "pkg:oci/img@sha256%3Aabc") is None
    assert package("thing", "NOASSERTION", None) is None
    assert package("thing", None, None) is None
    # A broken purl does not lose the package, only its ecosystem.
    assert package("x", "1", "not a purl") == {
        "name": "x",
        "version": "1",
        "purl": None,
        "ecosystem": None,
        "source": None,
    }


def _spdx(*packages: dict[str, Any]) -> dict[str, Any]:
    return {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": list(packages)}


def _spdx_package(name: str, version: str, purl: str | None) -> dict[str, Any]:
    refs = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl"}]
    if purl is not None:
        refs[0]["referenceLocator"] = purl
    return {"name": name, "versionInfo": version, "externalRefs": refs}


def test_an_in_toto_spdx_statement_gives_its_packages_once_each_in_order() -> None:
    busybox = "pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64&distro=alpine-3.18.4"
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "x", "digest": {"sha256": "a" * 64}}],
        "predicate": _spdx(
            _spdx_package("musl", "1.2.4-r2", "pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.18.4"),
            _spdx_package("busybox", "1.36.1-r2", busybox),
            _spdx_package("busybox", "1.36.1-r2", busybox),  # found at two locations
            _spdx_package("alpine:3.18", "sha256:feed", "pkg:oci/alpine@sha256%3Afeed"),
        ),
    }
    found = spdx.packages(statement)
    assert [(p["name"], p["version"], p["ecosystem"]) for p in found] == [
        ("busybox", "1.36.1-r2", "Alpine:v3.18"),
        ("musl", "1.2.4-r2", "Alpine:v3.18"),
    ]
    assert found[0]["purl"] == busybox


def test_what_is_not_spdx_is_refused() -> None:
    with pytest.raises(spdx.NotSpdx):
        spdx.packages({"bomFormat": "CycloneDX"})
    with pytest.raises(spdx.NotSpdx):
        spdx.packages({"spdxVersion": "SPDX-2.3", "packages": "many"})


def test_cyclonedx_components_nested_or_not_are_packages() -> None:
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {"type": "operating-system", "name": "debian", "version": "12"},
            {
                "type": "library",
                "name": "zlib1g",
                "version": "1:1.2.13.dfsg-1",
                "purl": "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?distro=debian-12&upstream=zlib",
                "components": [
                    {"type": "library", "name": "inner", "version": "2", "purl": "pkg:pypi/inner@2"}
                ],
            },
        ],
    }
    found = cyclonedx.packages(document)
    assert [(p["name"], p["ecosystem"], p["source"]) for p in found] == [
        ("zlib1g", "Debian:12", "zlib"),
        ("inner", "PyPI", None),
    ]
    with pytest.raises(cyclonedx.NotCycloneDx):
        cyclonedx.packages(_spdx())


def test_parse_document_tells_spdx_from_cyclonedx_and_from_neither() -> None:
    raw_spdx = json.dumps(_spdx(_spdx_package("a", "1", "pkg:pypi/a@1"))).encode()
    found = parse_document(raw_spdx, SbomSource.REFERRER)
    assert found is not None
    assert (found.source, found.format) == (SbomSource.REFERRER, "spdx-json")
    raw_cdx = json.dumps({"bomFormat": "CycloneDX", "components": []}).encode()
    assert (parse_document(raw_cdx, SbomSource.ATTESTATION) or found).format == "cyclonedx-json"
    assert parse_document(b"[1, 2]", SbomSource.REFERRER) is None
    assert parse_document(b"\xff not json", SbomSource.REFERRER) is None


def test_an_index_lays_out_its_platforms_and_the_attestation_of_each() -> None:
    body = {
        "manifests": [
            {"digest": WINDOWS, "platform": {"architecture": "amd64", "os": "windows"}},
            {"digest": AMD64, "platform": {"architecture": "amd64", "os": "linux"}},
            {
                "digest": ARM64,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            },
            {
                "digest": ATTESTATION,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": AMD64,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            },
        ]
    }
    assert layout_of(body, INDEX, "sha256:" + "f" * 64) == Layout(
        {"amd64": AMD64, "arm64": ARM64}, {AMD64: ATTESTATION}
    )
    # A single-platform manifest is its own (and only) platform.
    assert layout_of({}, MANIFEST, AMD64) == Layout({AMD64: AMD64})


def test_only_a_missing_or_failed_sbom_is_acquired_again() -> None:
    assert needs_acquiring(None)
    assert needs_acquiring(SbomStatus.ERROR)
    for final in (SbomStatus.FOUND, SbomStatus.GENERATED, SbomStatus.NO_SBOM):
        assert not needs_acquiring(final)
