"""The server's SBOM collector, as a typed dependency for the routes that (re-)check evidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.vulnerabilities.sbom import SbomCollector


async def current_sboms(request: Request) -> SbomCollector:
    # The monitor's own collector: one bound on Syft runs for the scans and the API alike.
    collector: SbomCollector = request.app.state.monitor.sboms
    return collector


Sboms = Annotated[SbomCollector, Depends(current_sboms)]
