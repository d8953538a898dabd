"""Which client and URL an image's registry field leads to, from settings alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from tagwarden.config import RegistryCredentials, Settings
from tagwarden.registry import (
    DockerHubClient,
    OciClient,
    RegistryClient,
    RegistryState,
    client_for,
    repository_path,
)
from tagwarden.testing import FakeClock, FakeRegistry
from tests.factories import make_settings


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "dockerhub_api_url": "http://hub.local:5055/",
        "registries": {
            "ghcr.io": RegistryCredentials(
                url="http://ghcr.local:5055", username="bot", password=SecretStr("pat")
            ),
            "127.0.0.1:5000": RegistryCredentials(url="http://127.0.0.1:5000"),
        },
        "registry_max_retries": 2,
        "registry_timeout_seconds": 3.0,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io"])
async def test_docker_hub_hosts_use_the_hub_api(host: str, http: httpx.AsyncClient) -> None:
    cfg = settings(dockerhub_username="me", dockerhub_password=SecretStr("tok"))
    client = client_for(host, cfg, http, state=RegistryState())
    assert isinstance(client, DockerHubClient)
    assert isinstance(client, RegistryClient)
    assert client.api_url == "http://hub.local:5055"
    assert (client.username, client.password) == ("me", "tok")
    assert client.transport.max_retries == 2
    assert client.transport.timeout == 3.0


async def test_configured_registry_gets_its_url_and_credentials(http: httpx.AsyncClient) -> None:
    client = client_for("ghcr.io", settings(), http, state=RegistryState(), resolve_changed=True)
    assert isinstance(client, OciClient)
    assert client.base_url == "http://ghcr.local:5055"
    assert (client.username, client.password) == ("bot", "pat")
    assert client.resolve_changed


async def test_configured_registry_without_credentials(http: httpx.AsyncClient) -> None:
    client = client_for("127.0.0.1:5000", settings(), http, state=RegistryState())
    assert isinstance(client, OciClient)
    assert client.base_url == "http://127.0.0.1:5000"
    assert client.username is None


async def test_unknown_host_is_https_and_anonymous(http: httpx.AsyncClient) -> None:
    client = client_for("quay.io", settings(), http, state=RegistryState())
    assert isinstance(client, OciClient)
    assert client.base_url == "https://quay.io"
    assert (client.username, client.password) == (None, None)


def test_repository_paths() -> None:
    assert repository_path(None, "redis", "docker.io") == "library/redis"
    assert repository_path("library", "redis", "docker.io") == "library/redis"
    assert repository_path("grafana", "grafana", "docker.io") == "grafana/grafana"
    assert repository_path("org/team", "app", "ghcr.io") == "org/team/app"
    assert repository_path("", "app", "127.0.0.1:5000") == "app"


async def test_clients_from_settings_talk_to_the_fake() -> None:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    fake.add_repository("library/redis", 12)
    fake.add_repository("org/team/app", 3)
    cfg = settings(
        dockerhub_api_url="http://hub.local",
        registries={"ghcr.io": RegistryCredentials(url="http://ghcr.local")},
    )
    state = RegistryState(clock=clock)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        hub = client_for("docker.io", cfg, http, state=state)
        oci = client_for("ghcr.io", cfg, http, state=state)
        hub_tags = [t async for t in hub.iter_tags(repository_path(None, "redis", "docker.io"), {})]
        oci_tags = [t async for t in oci.iter_tags("org/team/app", {})]
    assert len(hub_tags) == 12
    assert len(oci_tags) == 3
    # The same tag, read through either API, has the same digest.
    redis_via_oci = OciClient(oci.transport, "http://ghcr.local")  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        redis_via_oci.transport.http = http
        resolved = await redis_via_oci.resolve_tag("library/redis", hub_tags[0].name)
    assert resolved.digest == hub_tags[0].digest
    assert resolved.platform_digests == hub_tags[0].platform_digests
