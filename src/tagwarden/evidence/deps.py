"""The server's signature checker and SBOM collector, as typed dependencies for the routes that
(re-)check evidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.evidence.checker import SignatureChecker
from tagwarden.vulnerabilities.sbom import SbomCollector


async def current_checker(request: Request) -> SignatureChecker:
    checker: SignatureChecker = request.app.state.signature_checker
    return checker


Checker = Annotated[SignatureChecker, Depends(current_checker)]


async def current_sboms(request: Request) -> SbomCollector:
    # The monitor's own collector: one bound on Syft runs for the scans and the API alike.
    collector: SbomCollector = request.app.state.monitor.sboms
    return collector


Sboms = Annotated[SbomCollector, Depends(current_sboms)]
