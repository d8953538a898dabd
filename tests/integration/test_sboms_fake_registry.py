"""SBOM referrers through the OCI 1.1 referrers API (the fake registry has it; Debian's
docker-registry does not), beside BuildKit provenance attestations that are not SBOMs; on
both databases, with Syft off (the suite's default)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.config import RegistryCredentials, Settings
from tagwarden.monitor.worker import ImageMonitor
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.vulnerabilities.models import Sbom
from tagwarden.vulnerabilities.sbom import stored_sboms
from tests.factories import make_settings

HOST = "127.0.0.1:5998"  # served in-process by the fake registry's transport; never dialled
REPO = "team/app"
SPDX = "application/spdx+json"


def spdx_document(*packages: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [
            {
                "name": name,
                "versionInfo": version,
                "externalRefs": [{"referenceType": "purl", "referenceLocator": purl}],
            }
            for name, version, purl in packages
        ],
    }


def attach(fake: FakeRegistry, subject: str, document: dict[str, Any], kind: str) -> str:
    """An SBOM pushed as a referrer of ``subject`` (``oras attach``): artifact manifest with
    ``artifactType``, one layer holding the document, ``subject`` naming the image."""
    blob = json.dumps(document).encode()
    media_type, content = fake.model.manifests[subject]
    return fake.push_manifest(
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": fake.put_blob(b"{}"),
                "size": 2,
            },
            "layers": [{"mediaType": kind, "digest": fake.put_blob(blob), "size": len(blob)}],
            "subject": {"mediaType": media_type, "digest": subject, "size": len(content)},
        },
    )


async def test_an_spdx_referrer_is_found_and_provenance_is_not_an_sbom(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    # With attestations: BuildKit's provenance entries (unknown/unknown) beside each platform.
    fake.add_repository(REPO, 0, platforms=["linux/amd64", "linux/arm64/v8"], attestations=True)
    record = fake.push_tag(REPO, "2.0.0")
    amd64, arm64 = (image.digest for image in record.artifact.images)
    attach(
        fake,
        amd64,
        spdx_document(("requests", "2.31.0", "pkg:pypi/requests@2.31.0")),
        SPDX,
    )
    configured = make_settings(
        settings.database_url, registries={HOST: RegistryCredentials(url=f"http://{HOST}")}
    )
    http = httpx.AsyncClient(transport=fake.transport())
    async with http:
        monitor = ImageMonitor(configured, sessionmaker, http, state=RegistryState(clock=clock))
        statuses = await monitor.sboms.collect(HOST, REPO, [record.artifact.digest])

    assert statuses == {amd64: "found", arm64: "no_sbom"}
    async with sessionmaker() as session:
        rows: dict[str, Sbom] = await stored_sboms(session, [amd64, arm64])
    assert (rows[amd64].source, rows[amd64].format) == ("referrer", "spdx-json")
    assert rows[amd64].packages == [
        {
            "name": "requests",
            "version": "2.31.0",
            "purl": "pkg:pypi/requests@2.31.0",
            "ecosystem": "PyPI",
            "source": None,
        }
    ]
    # Provenance only, and Syft off: nothing to list, said so (and final).
    assert (rows[arm64].status, rows[arm64].source, rows[arm64].packages) == ("no_sbom", None, [])
