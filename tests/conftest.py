"""Fixtures shared by every test: both databases, the app, and tokens of each role.

Every database test runs twice, on SQLite and on PostgreSQL. PostgreSQL is found through
TAGWARDEN_TEST_POSTGRES_URL; without it the PostgreSQL half is skipped with a visible reason,
unless TAGWARDEN_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.auth import service as auth
from tagwarden.config import Settings, get_settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.migrations import upgrade
from tagwarden.models import Base
from tests.factories import make_settings
from tests.integration.real_registry import real_registry

__all__ = ["real_registry"]  # a session fixture shared by the registry and monitor tests

POSTGRES_URL = os.environ.get("TAGWARDEN_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("TAGWARDEN_REQUIRE_POSTGRES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.postgres_only``: the test's SQLite half is deselected (not skipped):
    row locks and concurrency are PostgreSQL's to prove, and SQLite has nothing to run."""
    deselected = [item for item in items if _is_sqlite_half_of_postgres_only(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _is_sqlite_half_of_postgres_only(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (
        item.get_closest_marker("postgres_only") is not None
        and callspec is not None
        and callspec.params.get("database_url") == "sqlite"
    )


def _async_url(url: str) -> str:
    return Settings(database_url=url).database_url


async def _run_sql(url: str, *statements: str) -> None:
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A private, migrated PostgreSQL database for this test session."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("TAGWARDEN_REQUIRE_POSTGRES=1 but TAGWARDEN_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need TAGWARDEN_TEST_POSTGRES_URL (see README, Testing)")
    admin_url = _async_url(POSTGRES_URL)
    name = f"tagwarden_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_run_sql(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if REQUIRE_POSTGRES:
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_run_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


TABLES_IN_DELETE_ORDER = [t.name for t in reversed(Base.metadata.sorted_tables)]
_TABLE_NAMES = ", ".join(f"'{t}'" for t in TABLES_IN_DELETE_ORDER)
# Emptying PostgreSQL between tests: one TRUNCATE of every table writes new files for each table
# and index (the suite's largest fixture cost); a DELETE of the few rows a test left takes a
# fraction of that. Children go first (TABLES_IN_DELETE_ORDER); a table with triggers of its
# own (audit_log refuses DELETE) is truncated instead; every sequence starts at 1 again, as
# RESTART IDENTITY did. One statement, so one transaction: all empty, or an error.
EMPTY_POSTGRES = f"""DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[{_TABLE_NAMES}]::text[] LOOP
        IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t::regclass AND NOT tgisinternal) THEN
            EXECUTE format('TRUNCATE %I CASCADE', t);
        ELSE
            EXECUTE format('DELETE FROM %I', t);
        END IF;
    END LOOP;
    PERFORM setval(oid, 1, false) FROM pg_class
        WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace;
END $$"""  # noqa: S608 (the names are the models' tables, not input)


def fresh_database_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    """An empty, migrated database of ``kind`` (``sqlite``: a copy of the template;
    ``postgresql``: the session's database, emptied) for one test."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "tagwarden.db"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(_run_sql(url, EMPTY_POSTGRES))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url(request, request.param, tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@dataclass
class Tokens:
    admin: str
    approver: str
    viewer: str

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture
async def tokens(sessionmaker: async_sessionmaker[AsyncSession]) -> Tokens:
    raw: dict[str, str] = {}
    async with sessionmaker() as session, session.begin():
        for role in ("admin", "approver", "viewer"):
            _, raw[role] = await auth.create_token(
                session,
                name=f"{role}-token",
                role=role,
                identity=f"{role}@example.com",
                actor="test-setup",
            )
    return Tokens(**raw)


@pytest.fixture
async def app(settings: Settings):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tagwarden.test") as c:
        yield c


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The `tagwarden` command's environment pointed at this test's database."""
    monkeypatch.setenv("TAGWARDEN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()
