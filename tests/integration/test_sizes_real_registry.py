"""Sizes read from a real registry (Debian's docker-registry): the manifests' own figures."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tagwarden.evidence import sizes
from tagwarden.registry import OciClient, RegistryState, client_for
from tests.factories import make_settings
from tests.integration.real_registry import RealRegistry, layer_blob, real_registry  # noqa: F401

pytestmark = pytest.mark.registry


def manifest_sum(manifest: dict[str, object]) -> int:
    config = manifest["config"]
    layers = manifest["layers"]
    assert isinstance(config, dict)
    assert isinstance(layers, list)
    return int(config["size"]) + sum(int(layer["size"]) for layer in layers)


async def test_sizes_of_a_pushed_image_are_its_manifests_sums_and_shared_layers_are_not_new(
    real_registry: RealRegistry,  # noqa: F811 - the fixture imported above
) -> None:
    base = layer_blob({f"usr/lib/base{i}": "x" * 2000 * i for i in range(1, 4)})
    old = real_registry.push_multiarch(
        "acme/sized", "1.0", created=datetime(2026, 1, 1, tzinfo=UTC), shared_layers=(base,)
    )
    new = real_registry.push_multiarch(
        "acme/sized", "1.1", created=datetime(2026, 2, 1, tzinfo=UTC), shared_layers=(base,)
    )
    settings = make_settings(
        registries={real_registry.host: real_registry.credentials()}, registry_max_retries=1
    )
    async with httpx.AsyncClient() as http:
        client = client_for(real_registry.host, settings, http, state=RegistryState())
        assert isinstance(client, OciClient)
        before = await client.image_blobs("acme/sized", old.digest)
        after = await client.image_blobs("acme/sized", new.digest)

    assert {arch: p.digest for arch, p in after.items()} == new.platform_digests
    now = sizes.compressed_bytes({arch: p.blobs for arch, p in after.items()})
    assert now == {arch: manifest_sum(m) for arch, m in new.manifests.items()}

    previous = sizes.Previous(
        "1.0",
        old.digest,
        sizes.compressed_bytes({arch: p.blobs for arch, p in before.items()}),
        {arch: frozenset(p.blobs.distinct()) for arch, p in before.items()},
    )
    evidence = sizes.size_evidence(
        {arch: p.blobs for arch, p in after.items()},
        previous=previous,
        checked_at=datetime.now(UTC),
    )
    for arch, manifest in new.manifests.items():
        own = manifest["layers"][-1]  # the one layer of its own, after the shared base
        config = manifest["config"]
        assert evidence["new_bytes"][arch] == own["size"] + config["size"]
        assert manifest["layers"][0]["size"] == len(base)
