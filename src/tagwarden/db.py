"""Declarative base, column types that vary by dialect, engine and session factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import JSON, CheckConstraint, DateTime, MetaData, String, event
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
    pass

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


def one_of(column: str, values: Iterable[StrEnum]) -> CheckConstraint:
    """A CHECK that ``column`` holds one of a state enum's values (named ``ck_<table>_<column>``).

    NULL passes an IN check on both databases, so a nullable column needs nothing more.
    """
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


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


E = TypeVar("E", bound=StrEnum)


class StateType(TypeDecorator[E]):
    """A state machine's column: a string in the database, its enum when read.

    Writes are not checked here (a filter may compare with any string and simply match
    nothing); the column's CHECK constraint (:func:`one_of`) refuses a value outside the enum.
    """

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


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


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: results are turned into responses after the commit at the edge.
    # Nothing rides on session.info: a use case gets its settings from the edge that calls it.
    return async_sessionmaker(engine, expire_on_commit=False)


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
