"""Which client serves an image, from its ``registry`` field and the settings."""

from __future__ import annotations

import httpx

from tagwarden.config import RegistryCredentials, Settings
from tagwarden.references import DOCKER_HUB_HOSTS, is_docker_hub
from tagwarden.registry.allowlist import is_allowed, refusal, trusted_netlocs
from tagwarden.registry.base import HostNotAllowed, RegistryClient
from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.oci import OciClient
from tagwarden.registry.transport import RegistryState, Transport

__all__ = [
    "DOCKER_HUB_HOSTS",
    "base_url",
    "client_for",
    "is_docker_hub",
    "repository_path",
    "shared_state",
]

_shared_state: RegistryState | None = None


def shared_state() -> RegistryState:
    """The process-wide limits and tokens, so budgets and tokens survive from scan to scan."""
    global _shared_state  # one per process is the point
    if _shared_state is None:
        _shared_state = RegistryState()
    return _shared_state


def repository_path(namespace: str | None, image_name: str, registry_host: str) -> str:
    """``namespace/image_name``; Docker Hub puts official images under ``library``."""
    namespace = (namespace or "").strip("/")
    if not namespace:
        if is_docker_hub(registry_host):
            namespace = "library"
        else:
            return image_name.strip("/")
    return f"{namespace}/{image_name.strip('/')}"


def client_for(
    registry_host: str,
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    state: RegistryState | None = None,
    resolve_changed: bool = False,
    head_concurrency: int = 8,
) -> RegistryClient:
    """Docker Hub hosts → the Hub API client; a host in ``settings.registries`` → its URL and
    credentials; any other allowed host → ``https://<host>`` anonymously.

    ``resolve_changed`` only affects OCI registries (see :mod:`tagwarden.registry.oci`).

    A host that is not allowed (:mod:`tagwarden.registry.allowlist`) raises HostNotAllowed, so
    an image that predates the allow-list, or a setting since narrowed, is a recorded error
    and never a request.
    """
    if not is_allowed(registry_host, settings):
        raise HostNotAllowed(refusal(registry_host))
    transport = Transport(
        http,
        state or shared_state(),
        max_retries=settings.registry_max_retries,
        timeout=settings.registry_timeout_seconds,
        trusted=trusted_netlocs(settings),
    )
    host = registry_host.strip().lower()
    if is_docker_hub(host):
        password = settings.dockerhub_password
        return DockerHubClient(
            transport,
            base_url(host, settings),
            username=settings.dockerhub_username,
            password=password.get_secret_value() if password else None,
            registry_url=settings.dockerhub_registry_url,
        )
    credentials = _credentials(registry_host, settings)
    return OciClient(
        transport,
        base_url(registry_host, settings),
        username=credentials.username if credentials else None,
        password=(
            credentials.password.get_secret_value()
            if credentials and credentials.password
            else None
        ),
        resolve_changed=resolve_changed,
        head_concurrency=head_concurrency,
    )


def _credentials(registry_host: str, settings: Settings) -> RegistryCredentials | None:
    return settings.registries.get(registry_host) or settings.registries.get(
        registry_host.strip().lower()
    )


def base_url(registry_host: str, settings: Settings) -> str:
    """Where a registry host's API answers: Docker Hub's API URL, the URL configured in
    ``TAGWARDEN_REGISTRIES``, or ``https://<host>``."""
    if is_docker_hub(registry_host):
        return settings.dockerhub_api_url.rstrip("/")
    credentials = _credentials(registry_host, settings)
    return (credentials.url if credentials else f"https://{registry_host.strip().lower()}").rstrip(
        "/"
    )
