"""`tagwarden db`: schema migrations."""

from __future__ import annotations

import typer

from tagwarden.cli.common import console, load_settings, run
from tagwarden.db import make_engine
from tagwarden.migrations import check, current, upgrade

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Migrate the database to the newest schema (or to REVISION)."""
    settings = load_settings()

    async def go() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            await upgrade(engine, revision)
            return await current(engine)
        finally:
            await engine.dispose()

    console.print(f"database at revision {run(go())}")


@app.command("current")
def current_cmd() -> None:
    """Print the database's schema revision."""
    settings = load_settings()

    async def go() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            return await current(engine)
        finally:
            await engine.dispose()

    console.print(run(go()) or "empty (not migrated)")


@app.command("check")
def check_cmd() -> None:
    """Fail if the models have drifted from the migrations."""
    settings = load_settings()

    async def go() -> None:
        engine = make_engine(settings.database_url)
        try:
            await check(engine)
        finally:
            await engine.dispose()

    run(go())
    console.print("models and migrations agree")
