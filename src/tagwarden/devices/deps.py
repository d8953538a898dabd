"""The device API's parts made once by create_app (presence, the poll index), as typed
dependencies: routes never reach into ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from tagwarden.config import Settings
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


@dataclass(frozen=True, slots=True)
class PollParts:
    settings: Settings
    engine: AsyncEngine
    index: DeviceIndex
    presence: Presence


def poll_parts(request: Request) -> PollParts:
    """The poll's parts, read by a plain call rather than as dependencies: on the hottest
    path FastAPI's dependency resolution cost as much as the poll itself (docs/scale.md)."""
    state = request.app.state
    return PollParts(state.settings, state.engine, state.device_index, state.device_presence)
