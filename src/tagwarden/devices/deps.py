"""The device API's parts made once by create_app (presence, the poll index), as typed
dependencies: routes never reach into ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.devices.index import DeviceIndex
from tagwarden.devices.presence import Presence


# Coroutines: FastAPI runs a plain function in a worker thread, a cost on the hot poll path.
async def _presence(request: Request) -> Presence:
    presence: Presence = request.app.state.device_presence
    return presence


async def _device_index(request: Request) -> DeviceIndex:
    device_index: DeviceIndex = request.app.state.device_index
    return device_index


Seen = Annotated[Presence, Depends(_presence)]
Index = Annotated[DeviceIndex, Depends(_device_index)]
