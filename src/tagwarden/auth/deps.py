"""Request-scoped dependencies shared by every router: the transaction and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tagwarden.auth import throttle
from tagwarden.auth.service import Principal, authenticate
from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.config import Settings
from tagwarden.db import transaction
from tagwarden.errors import Forbidden, Unauthorized


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # The edge of the use case: commit when the route returns, roll back if it raises, and do
    # both before the response is sent, so a failed commit is never reported as a success.
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


Session = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessions


# For a route that needs more than one transaction (a credential checked before the body is
# read, say): it opens each with ``transaction(sessions)``.
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]

_bearer = HTTPBearer(auto_error=False, description="An API token: `tagwarden token create`")


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    # Its own short transaction: recording the token's use must not hold a write lock for the
    # length of the use case (on SQLite that would block the use case's other writers).
    async with transaction(request.app.state.sessionmaker) as session:
        principal = await authenticate(session, credentials.credentials)
    if principal is None:
        throttle.failed(request)  # 429 past the limit of failures from this address
        raise Unauthorized("invalid or revoked token")
    return principal


def require(role: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"this action needs the {role} role; your token is {principal.role}")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Admin = Annotated[Principal, Depends(require("admin"))]


# A coroutine: FastAPI would run a plain function in a worker thread, on every request that
# reads the settings (each device poll among them).
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings_dep)]


# Coroutines, not plain functions, which FastAPI would run in a worker thread per request.
async def get_clock() -> Clock:
    """The use cases' clock; tests override this dependency with one they move by hand."""
    return SYSTEM_CLOCK


async def _now(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    return utc(clock)


# The moment a request acts at: the same clock as the rollout monitor's when a test sets one.
Now = Annotated[datetime, Depends(_now)]


async def _engine(request: Request) -> AsyncEngine:
    # A bare connection, not a session, where no transaction is wanted (the device poll, the
    # health check): nothing to begin or end.
    engine: AsyncEngine = request.app.state.engine
    return engine


Engine = Annotated[AsyncEngine, Depends(_engine)]
