"""`tagwarden serve`: the API server and its background workers."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

import typer
import uvicorn

from tagwarden.cli.common import console, load_settings
from tagwarden.config import Settings
from tagwarden.db import make_engine
from tagwarden.migrations import upgrade
from tagwarden.redact import RedactingFilter, install_log_redaction

if TYPE_CHECKING:
    from fastapi import FastAPI


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with every handler redacting: the access log writes each request's
    path, and a Docker Hub webhook's path carries its secret."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactingFilter}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config


def serve(
    host: str | None = typer.Option(None, help="default: TAGWARDEN_HOST (127.0.0.1)"),
    port: int | None = typer.Option(None, help="default: TAGWARDEN_PORT (4002)"),
    migrate: bool | None = typer.Option(
        None,
        "--migrate/--no-migrate",
        help="migrate before serving (default: yes for SQLite; run `db upgrade` for PostgreSQL)",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="server processes on the one port, each with its own device index and workers",
    ),
) -> None:
    """Serve the API on TAGWARDEN_HOST:TAGWARDEN_PORT."""
    settings = load_settings()
    # The monitor's "[ImageMonitor] …" lines (seed 001) go to stderr beside uvicorn's.
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()
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
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": log_config(),
        "proxy_headers": True,
    }
    if workers > 1:
        # uvicorn's supervisor binds the port once and forks the processes, which share it;
        # each builds its own app from the same TAGWARDEN_* environment.
        uvicorn.run("tagwarden.cli.serve:served_app", factory=True, workers=workers, **options)
        return
    uvicorn.run(served_app(settings), **options)


def served_app(settings: Settings | None = None) -> FastAPI:
    """The app as a server process runs it (the factory of each ``--workers`` process)."""
    from tagwarden.app import create_app

    return create_app(settings or load_settings(), freeze_gc=True)
