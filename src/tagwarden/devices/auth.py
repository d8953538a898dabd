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

__all__ = ["DeviceKey", "counting_failures"]

_device_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="DeviceKey",
    description="The device key shown once by `POST /api/v1/devices` (not an API token)",
)


async def _device_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing device key (Authorization: Bearer <device key>)")
    return credentials.credentials


DeviceKey = Annotated[str, Depends(_device_key)]
