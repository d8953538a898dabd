"""The server's one image monitor, as a typed dependency for the routes and pages that drive it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.monitor.worker import ImageMonitor


async def current_monitor(request: Request) -> ImageMonitor:
    # Built once in create_app; a dependency keeps routes from reaching into app.state.
    monitor: ImageMonitor = request.app.state.monitor
    return monitor


Monitor = Annotated[ImageMonitor, Depends(current_monitor)]
