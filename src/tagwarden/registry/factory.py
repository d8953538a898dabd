"""Which client serves an image, from its ``registry`` field and the settings."""

from __future__ import annotations

from typing import Any

import httpx

from tagwarden.config import RegistryCredentials, Settings
from tagwarden.references import DOCKER_HUB_HOSTS, is_docker_hub
from tagwarden.registry.allowlist import is_allowed, refusal, trusted_netlocs
from tagwarden.registry.base import HostNotAllowed, RegistryClient
from tagwarden.registry.credentials import CredentialedOciClient, CredentialSource, docker_config
from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.github import GitHubClient
from tagwarden.registry.harbor import HarborClient
from tagwarden.registry.oci import OciClient
from tagwarden.registry.quay import OAUTH_TOKEN_USER, QuayClient
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
    """Docker Hub hosts → the Hub API client; a host in ``settings.registries`` → its URL,
    credentials and kind (``oci``, ``quay``, ``harbor``, ``github``: whose listing API to use);
    any other allowed host → ``https://<host>``, with the docker config's credentials if any.

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
    return _registry_client(registry_host, settings, transport, resolve_changed, head_concurrency)


def _registry_client(
    registry_host: str,
    settings: Settings,
    transport: Transport,
    resolve_changed: bool,
    head_concurrency: int,
) -> OciClient:
    """The client a registry's ``kind`` asks for, with the credentials the settings give or,
    when they give none, those of the docker config (TAGWARDEN_DOCKER_CONFIG)."""
    entry = _credentials(registry_host, settings)
    username = entry.username if entry else None
    password = entry.password.get_secret_value() if entry and entry.password else None
    token = entry.token.get_secret_value() if entry and entry.token else None
    source = None
    if not (username or password or token) and settings.docker_config:
        config = docker_config(settings.docker_config, settings.credential_helper_timeout_seconds)
        source = CredentialSource(config, registry_host.strip().lower())
    if entry is not None and entry.kind == "quay" and token and not (username and password):
        # Quay's /v2 takes the OAuth token too, under its $oauthtoken user name.
        username, password = OAUTH_TOKEN_USER, token
    if entry is not None and entry.kind == "github" and token and not password:
        username, password = username or "tagwarden", token  # ghcr.io takes any user with a PAT
    common: dict[str, Any] = {
        "username": username,
        "password": password,
        "resolve_changed": resolve_changed,
        "head_concurrency": head_concurrency,
        "source": source,
    }
    url = base_url(registry_host, settings)
    kind = entry.kind if entry else "oci"
    api_url = (entry.api_url if entry and entry.api_url else url).rstrip("/")
    if kind == "quay":
        return QuayClient(transport, url, api_url=api_url, api_token=token, **common)
    if kind == "harbor":
        return HarborClient(transport, url, api_url=api_url, **common)
    if kind == "github":
        return GitHubClient(transport, url, api_url=api_url, api_token=token, **common)
    if source is not None:
        return CredentialedOciClient(transport, url, **common)
    del common["source"]
    return OciClient(transport, url, **common)


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
