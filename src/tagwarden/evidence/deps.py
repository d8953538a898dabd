"""The server's signature checker, as a typed dependency for the routes that (re-)check evidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.evidence.checker import SignatureChecker


async def current_checker(request: Request) -> SignatureChecker:
    checker: SignatureChecker = request.app.state.signature_checker
    return checker


Checker = Annotated[SignatureChecker, Depends(current_checker)]
