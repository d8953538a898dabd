"""The OCI client against a real registry (distribution, Debian's docker-registry)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tagwarden.config import Settings
from tagwarden.registry import (
    AuthenticationFailed,
    ImageNotFound,
    OciClient,
    RegistryState,
    Transport,
    client_for,
)
from tests.factories import make_settings
from tests.integration import real_registry as module
from tests.integration.real_registry import RealRegistry, real_registry  # noqa: F401 - fixture

pytestmark = pytest.mark.registry


def settings_for(registry: RealRegistry) -> Settings:
    return make_settings(registries={registry.host: registry.credentials()}, registry_max_retries=1)


async def test_multiarch_index_is_discovered_and_resolved(
    real_registry: RealRegistry,  # noqa: F811 - the fixture imported above
) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    pushed = real_registry.push_multiarch("acme/widget", "1.4.0", created=created)
    real_registry.push_multiarch("acme/widget", "1.3.9", created=datetime(2025, 12, 1, tzinfo=UTC))

    async with httpx.AsyncClient() as http:
        client = client_for(
            real_registry.host, settings_for(real_registry), http, state=RegistryState()
        )
        assert isinstance(client, OciClient)
        listed = {t.name: t async for t in client.iter_tags("acme/widget", {})}
        resolved = await client.resolve_tag("acme/widget", "1.4.0")

    assert set(listed) == {"1.3.9", "1.4.0"}
    assert listed["1.4.0"].digest == pushed.digest  # from the manifest HEAD
    assert not listed["1.4.0"].resolved
    assert resolved.digest == pushed.digest
    assert resolved.architectures == ["amd64", "arm64"]
    assert resolved.platform_digests == pushed.platform_digests
    assert resolved.last_updated == created  # from the amd64 config blob


async def test_resolve_changed_resolves_a_repushed_tag(
    real_registry: RealRegistry,  # noqa: F811 - the fixture imported above
) -> None:
    first = real_registry.push_multiarch(
        "acme/gadget", "2.0", created=datetime(2026, 2, 1, tzinfo=UTC)
    )
    async with httpx.AsyncClient() as http:
        settings = settings_for(real_registry)
        client = client_for(
            real_registry.host, settings, http, state=RegistryState(), resolve_changed=True
        )
        known = {"2.0": first.digest}
        unchanged = [t async for t in client.iter_tags("acme/gadget", known)]
        again = real_registry.push_multiarch(
            "acme/gadget", "2.0", created=datetime(2026, 2, 2, tzinfo=UTC)
        )
        changed = [t async for t in client.iter_tags("acme/gadget", known)]

    assert [(t.name, t.resolved) for t in unchanged] == [("2.0", False)]
    (tag,) = changed
    assert tag.resolved
    assert tag.digest == again.digest != first.digest
    assert tag.last_updated == datetime(2026, 2, 2, tzinfo=UTC)


async def test_wrong_password_and_missing_repository(
    real_registry: RealRegistry,  # noqa: F811 - the fixture imported above
) -> None:
    async with httpx.AsyncClient() as http:
        state = RegistryState()
        good = client_for(real_registry.host, settings_for(real_registry), http, state=state)
        with pytest.raises(ImageNotFound):
            [t async for t in good.iter_tags("acme/does-not-exist", {})]
        bad = OciClient(
            Transport(http, RegistryState(), max_retries=0, timeout=5),
            real_registry.url,
            username=real_registry.username,
            password="wrong",
        )
        with pytest.raises(AuthenticationFailed):
            [t async for t in bad.iter_tags("acme/widget", {})]


def test_missing_registry_skips_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "REGISTRY_BINARY", Path("/nonexistent/docker-registry"))
    monkeypatch.delenv(module.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y docker-registry"):
        module.require_registry()


def test_missing_registry_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "REGISTRY_BINARY", Path("/nonexistent/docker-registry"))
    monkeypatch.setenv(module.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="TAGWARDEN_REQUIRE_REGISTRY=1"):
        module.require_registry()
