"""The key that signs admin-UI sessions, CSRF tokens and flash messages.

``TAGWARDEN_SECRET_KEY`` when it is set. Otherwise a random key the server generates once and
keeps in ``server_secrets``: every replica on the database reads the same one, it survives
restarts, and no key anyone can read in the source ever signs a session.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.auth.models import ServerSecret
from tagwarden.config import Settings
from tagwarden.db import insert_for, transaction, utcnow

log = logging.getLogger("tagwarden.auth")

SESSION_SECRET = "web_session_key"  # noqa: S105 - the row's name, not its value
GENERATED = (
    "generated a session secret and stored it in the database "
    "(set TAGWARDEN_SECRET_KEY to choose one)"
)
_STATE = "session_secret"


async def get_or_create(
    sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> tuple[str, bool]:
    """The named secret, made now if there is none yet; True when this call made it.

    Race-safe across replicas: the insert does nothing when another one got there first (the
    primary key decides), and the row read back is whichever insert won.
    """
    async with transaction(sessionmaker) as session:
        value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
        if value is not None:
            return value, False
        insert = insert_for(session)
        result = await session.execute(
            insert(ServerSecret)
            .values(name=name, value=secrets.token_urlsafe(48), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        created = getattr(result, "rowcount", 0) == 1
        value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    if value is None:  # pragma: no cover - the row was inserted or already there
        raise RuntimeError(f"server secret {name!r} could not be stored")
    return value, created


async def resolve_session_secret(app: Any) -> str:
    """The session key for ``app``: read (or made) once, then kept on ``app.state``.

    The lifespan calls this at start; pages call it too, for apps served without a lifespan.
    """
    settings: Settings = app.state.settings
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    cached: str | None = getattr(app.state, _STATE, None)
    if cached is not None:
        return cached
    value, created = await get_or_create(app.state.sessionmaker, SESSION_SECRET)
    if created:
        log.info(GENERATED)
    setattr(app.state, _STATE, value)
    return value


def session_secret(app: Any) -> str:
    """The session key, once ``resolve_session_secret`` has run for this app."""
    settings: Settings = app.state.settings
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    cached: str | None = getattr(app.state, _STATE, None)
    if cached is None:
        raise RuntimeError("the session secret is read before it was resolved")
    return cached
