"""Registry clients: Docker Hub's Hub API and OCI distribution registries behind one interface."""

from tagwarden.platforms import normalise_architecture
from tagwarden.registry.base import (
    AuthenticationFailed,
    HostNotAllowed,
    ImageNotFound,
    MalformedResponse,
    Platform,
    RateLimited,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    RemoteTag,
)
from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.factory import client_for, is_docker_hub, repository_path, shared_state
from tagwarden.registry.oci import OciClient
from tagwarden.registry.transport import RegistryState, Transport

__all__ = [
    "AuthenticationFailed",
    "DockerHubClient",
    "HostNotAllowed",
    "ImageNotFound",
    "MalformedResponse",
    "OciClient",
    "Platform",
    "RateLimited",
    "RegistryClient",
    "RegistryError",
    "RegistryState",
    "RegistryUnavailable",
    "RemoteTag",
    "Transport",
    "client_for",
    "is_docker_hub",
    "normalise_architecture",
    "repository_path",
    "shared_state",
]
