"""Declarative base, column types that vary by dialect, engine and session factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from tagwarden.config import Settings

# Stable constraint names, so migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# JSONB (GIN-indexable) on PostgreSQL, JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases.

    SQLite stores no offset, so values come back naive; they were written as UTC, so they are
    read back as UTC. A naive value handed in is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; tagwarden stores timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def in_values(column: str, values: Iterable[str]) -> str:
    """A CHECK constraint's text holding ``column`` to a state machine's values."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Foreign keys are off by default in SQLite; WAL lets the monitor write while the API reads;
    # synchronous=NORMAL is WAL's recommended pairing (no corruption on power loss, no fsync per
    # commit); busy_timeout turns "database is locked" into a short wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """``info`` rides on every session (``session.info``): settings a use case deep in the
    pipeline needs without every caller passing them down (the auto-rollout's poll interval)."""
    # expire_on_commit=False: results are turned into responses after the commit at the edge.
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})


def session_info(settings: Settings) -> dict[str, Any]:
    return {"device_poll_interval_seconds": settings.device_poll_interval_seconds}


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One use case, one transaction: commit when the block ends cleanly, roll back otherwise."""
    async with sessionmaker() as session, session.begin():
        yield session


def insert_for(session: AsyncSession) -> Callable[..., Any]:
    """The dialect's INSERT construct, which has ``on_conflict_do_nothing``/``…_do_update``.

    Both databases speak ``INSERT … ON CONFLICT``; SQLAlchemy exposes it per dialect.
    """
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def flush_unique(session: AsyncSession, conflict: Exception) -> None:
    """Flush new rows; one that breaks a unique constraint (a concurrent create of the same
    name, say) raises ``conflict`` instead of an IntegrityError the API would answer with 500.
    The caller's transaction is then rolled back as any failed use case's is."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict from exc
