"""Registry clients wired to a fake registry in memory, with a fake clock: the test set-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tagwarden.registry.dockerhub import DockerHubClient
from tagwarden.registry.oci import OciClient
from tagwarden.registry.transport import RegistryState, Transport
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry

# Two names for the one in-memory server, so Hub API and registry limits stay per host as in life.
HUB_URL = "http://hub.fake.test"
OCI_URL = "http://registry.fake.test"


@dataclass
class RegistryHarness:
    fake: FakeRegistry
    clock: FakeClock
    http: httpx.AsyncClient
    state: RegistryState

    def transport(self, *, max_retries: int = 4, timeout: float = 5.0) -> Transport:
        return Transport(self.http, self.state, max_retries=max_retries, timeout=timeout)

    def hub(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        max_retries: int = 4,
    ) -> DockerHubClient:
        return DockerHubClient(
            self.transport(max_retries=max_retries),
            HUB_URL,
            username=username,
            password=password,
            registry_url=OCI_URL,  # the fake's registry API answers for Docker Hub's
        )

    def oci(self, *, max_retries: int = 4, **kwargs: Any) -> OciClient:
        return OciClient(self.transport(max_retries=max_retries), OCI_URL, **kwargs)


@asynccontextmanager
async def registry_harness(
    *, max_wait_seconds: float = 120.0, **fake_options: Any
) -> AsyncIterator[RegistryHarness]:
    """A fresh fake registry (``fake_options`` go to :class:`FakeRegistry`) and clients for it."""
    clock = FakeClock()
    fake = FakeRegistry(clock=clock, **fake_options)
    state = RegistryState(clock=clock, max_wait_seconds=max_wait_seconds)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        yield RegistryHarness(fake, clock, http, state)
