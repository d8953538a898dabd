"""The server's registry clients (one per host, shared with the monitor: one rate limit, one
token cache per registry), as a typed dependency for routes that read a registry themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from tagwarden.registry.base import RegistryClient

ClientForHost = Callable[[str], RegistryClient]


async def current_clients(request: Request) -> ClientForHost:
    clients: ClientForHost = request.app.state.registry_clients
    return clients


RegistryClients = Annotated[ClientForHost, Depends(current_clients)]
