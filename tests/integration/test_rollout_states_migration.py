"""The state CHECK constraints migrate a database that holds rollouts without losing a row.

On SQLite the migration copies the rollouts table and drops the old one; with foreign keys on,
that drop would delete every rollout's devices (ON DELETE CASCADE).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tagwarden.db import make_engine
from tagwarden.migrations import alembic_config, upgrade
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, _async_url, _run_sql

BEFORE = "2026_12_01_apps"
WHEN = datetime(2026, 12, 1, tzinfo=UTC)
ROWS = [
    "INSERT INTO images (id, image_name, namespace, registry, approval_status,"
    " watch_for_updates, created_at, updated_at)"
    " VALUES (1, 'redis', 'library', 'docker.io', 'approved', false, :t, :t)",
    "INSERT INTO devices (id, uuid, name, architecture, labels, key_hash, key_prefix,"
    " created_at, updated_at) VALUES (1, 'd1', 'd1', 'amd64', '{}', 'h', 'p', :t, :t)",
    "INSERT INTO rollouts (id, image_id, image, tag, digest, app_name, strategy, options,"
    " target_devices, status, batch_count, created_by, created_at, updated_at)"
    " VALUES (1, 1, 'redis', '7', 'sha256:x', 'redis', 'canary', '{}', '[]', 'running', 1,"
    " 'me', :t, :t)",
    "INSERT INTO rollout_devices (id, rollout_id, device_id, app_name, batch, state, active,"
    " created_at) VALUES (1, 1, 1, 'redis', 1, 'scheduled', true, :t)",
    "INSERT INTO device_apps (id, device_id, app_name, rollout_id, status, health)"
    " VALUES (1, 1, 'redis', 1, 'running', 'healthy')",
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("TAGWARDEN_REQUIRE_POSTGRES=1 but TAGWARDEN_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need TAGWARDEN_TEST_POSTGRES_URL (see README, Testing)")
    admin_url = _async_url(POSTGRES_URL)
    name = f"tagwarden_states_{uuid.uuid4().hex[:10]}"
    await _run_sql(admin_url, f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    await _run_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_rollouts_and_their_devices_survive_the_state_constraints(
    empty_database: str,
) -> None:
    engine = make_engine(empty_database)
    try:
        await upgrade(engine, BEFORE)
        async with engine.begin() as conn:
            for statement in ROWS:
                await conn.execute(text(statement), {"t": WHEN})
        await upgrade(engine)
        async with engine.connect() as conn:
            kept = (await conn.execute(text("SELECT id, state FROM rollout_devices"))).all()
            pointer = await conn.scalar(text("SELECT rollout_id FROM device_apps"))
            if engine.dialect.name == "sqlite":
                assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert [tuple(row) for row in kept] == [(1, "scheduled")]
        assert pointer == 1
        for bogus in [
            "UPDATE rollouts SET status = 'bogus'",
            "UPDATE rollout_devices SET state = 'bogus'",
            "UPDATE device_apps SET status = 'bogus'",
            "UPDATE device_apps SET health = 'bogus'",
        ]:
            with pytest.raises(IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(text(bogus))
    finally:
        await engine.dispose()


async def test_the_migration_refuses_to_run_with_sqlite_foreign_keys_on(tmp_path: Path) -> None:
    """Run by Alembic alone (foreign keys left on), it stops before copying a table."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}")
    try:
        await upgrade(engine, BEFORE)
        with pytest.raises(RuntimeError, match="foreign keys are on"):
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    finally:
        await engine.dispose()
