"""The device key: a bearer credential that reads and writes only its own device's state.

A wrong key (401) counts as a failed credential check of the caller's address
(``auth/throttle.py``); a key of another device (403) is a real key and is not counted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tagwarden.auth.throttle import counting_failures
from tagwarden.errors import Unauthorized

__all__ = ["POLL_OPENAPI", "DeviceKey", "counting_failures", "key_from_header"]

_device_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="DeviceKey",
    description="The device key shown once by `POST /api/v1/devices` (not an API token)",
)


_MISSING = "missing device key (Authorization: Bearer <device key>)"


async def _device_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(_MISSING)
    return credentials.credentials


def key_from_header(authorization: str | None) -> str:
    """The device key of an ``Authorization`` header, read as :data:`DeviceKey` reads it.

    The poll reads its headers itself: each dependency FastAPI solves per request costs about
    as much as the rest of an unchanged poll, and a fleet polls far more than it does anything
    else. :data:`POLL_OPENAPI` documents what the dependencies would have documented."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthorized(_MISSING)
    return credentials


POLL_OPENAPI: dict[str, object] = {
    "security": [{_device_bearer.scheme_name: []}],
    "parameters": [
        {
            "name": "if-none-match",
            "in": "header",
            "required": False,
            "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "If-None-Match"},
        }
    ],
}


DeviceKey = Annotated[str, Depends(_device_key)]
