"""`tagwarden apps`: app definitions, the container config devices run beside each image."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.apps import service
from tagwarden.apps.schemas import NAME_PATTERN, AppOut, AppPut
from tagwarden.cli.common import (
    checked,
    cli_principal,
    console,
    err_console,
    load_settings,
    transact,
)
from tagwarden.devices.models import App
from tagwarden.errors import InvalidInput

app = typer.Typer(help="App definitions: put, list, show, delete.", no_args_is_help=True)


def _name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        err_console.print(
            f"[red]error:[/red] {name!r} is not an app name (lowercase, digits, . _ -)"
        )
        raise typer.Exit(2)
    return name


def _config(config: str | None, config_file: Path | None) -> Any:
    if (config is None) == (config_file is None):
        err_console.print("[red]error:[/red] give --config JSON or --config-file FILE, one of them")
        raise typer.Exit(2)
    try:
        text = config if config is not None else config_file.read_text()  # type: ignore[union-attr]
        return json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err_console.print(f"[red]error:[/red] the config is not readable JSON: {exc}")
        raise typer.Exit(2) from exc


def _show(app_: App) -> str:
    return json.dumps(AppOut.of(app_).model_dump(mode="json"), indent=2)


@app.command("put")
def put(
    name: str = typer.Argument(..., help="the app name rollouts use (default: the image name)"),
    image_id: int = typer.Option(..., "--image-id", help="the image this app runs"),
    config: str | None = typer.Option(None, "--config", help="the config as JSON"),
    config_file: Path | None = typer.Option(None, "--config-file", help="a JSON file"),
) -> None:
    """Create or replace an app definition; devices with the app get the new state."""
    data = checked(AppPut, {"image_id": image_id, "config": _config(config, config_file)})
    roots = load_settings().app_bind_roots
    name = _name(name)
    try:
        service.check_binds(data.config.stored(), roots)
    except InvalidInput as exc:  # bad input, like the checks above: exit code 2
        err_console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc

    async def work(session: AsyncSession) -> tuple[App, bool]:
        return await service.put_app(session, name, data, cli_principal(), bind_roots=roots)

    stored, created = transact(work)
    console.print(f"{'Created' if created else 'Saved'} app {stored.name}")
    console.print(_show(stored), markup=False)


@app.command("list")
def list_cmd() -> None:
    """List app definitions."""

    async def work(session: AsyncSession) -> list[App]:
        return list(await service.list_apps(session))

    table = Table("name", "image id", "config keys", "updated", "by")
    for row in transact(work):
        table.add_row(
            row.name,
            str(row.image_id),
            ", ".join(sorted(row.config)) or "-",
            f"{row.updated_at:%Y-%m-%d %H:%M:%S}",
            row.updated_by,
        )
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(...)) -> None:
    """Print an app definition as JSON."""
    name = _name(name)

    async def work(session: AsyncSession) -> App:
        return await service.get_app(session, name)

    console.print(_show(transact(work)), markup=False)


@app.command("delete")
def delete(name: str = typer.Argument(...)) -> None:
    """Delete an app definition: devices keep their targets and run the image as it is."""
    name = _name(name)

    async def work(session: AsyncSession) -> App:
        return await service.delete_app(session, name, cli_principal())

    console.print(f"Deleted app {transact(work).name}")
