"""`tagwarden serve`: the API server (and, as later parts land, its background workers)."""

from __future__ import annotations

import asyncio
import logging

import typer
import uvicorn

from tagwarden.cli.common import console, load_settings
from tagwarden.db import make_engine
from tagwarden.migrations import upgrade


def serve(
    host: str | None = typer.Option(None, help="default: TAGWARDEN_HOST (127.0.0.1)"),
    port: int | None = typer.Option(None, help="default: TAGWARDEN_PORT (4002)"),
    migrate: bool | None = typer.Option(
        None,
        "--migrate/--no-migrate",
        help="migrate before serving (default: yes for SQLite; run `db upgrade` for PostgreSQL)",
    ),
) -> None:
    """Serve the API on TAGWARDEN_HOST:TAGWARDEN_PORT."""
    settings = load_settings()
    # The monitor's "[ImageMonitor] …" lines (seed 001) go to stderr beside uvicorn's.
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if migrate is None:
        migrate = settings.is_sqlite
    if migrate:

        async def go() -> None:
            engine = make_engine(settings.database_url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(go())
        console.print("database migrated")
    from tagwarden.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )
