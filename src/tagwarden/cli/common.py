"""What every command group shares: settings, one transaction per command, and output."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.auth.service import Principal
from tagwarden.config import Settings, describe_error, get_settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.devices.schemas import parse_labels
from tagwarden.errors import DomainError, InvalidInput, describe_validation

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Piped output (grep, CI logs) gets wide tables instead of rich's 80-column fallback.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False)


def load_settings() -> Settings:
    """Settings, or a clear message and exit code 2 when a value is wrong."""
    try:
        return get_settings()
    except ValidationError as exc:
        err_console.print(f"[red]error:[/red] {describe_error(exc)}")
        raise typer.Exit(2) from exc
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] invalid settings: {exc}")
        raise typer.Exit(2) from exc


def cli_principal(identity: str | None = None) -> Principal:
    # Whoever can run the CLI can read the database directly: they act as an admin, under
    # their own name in the audit log.
    return Principal(identity=identity or f"cli:{getpass.getuser()}", role="admin")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a domain error becomes a message and exit code 1."""
    try:
        return asyncio.run(coro)
    except DomainError as exc:
        err_console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


def checked(model: type[M], data: Mapping[str, Any]) -> M:
    """Command-line input validated as the API validates it; bad input is a message and exit
    code 2, not a traceback."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err_console.print(f"[red]error:[/red] {describe_validation(exc.errors())}")
        raise typer.Exit(2) from exc


def labels(items: list[str]) -> dict[str, str]:
    """``--label key=value`` options → labels; a malformed one is a message and exit code 2."""
    try:
        return parse_labels(items)
    except InvalidInput as exc:
        err_console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


async def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One command, one transaction: committed when ``work`` returns, rolled back if it raises."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        async with (
            make_sessionmaker(engine)() as session,
            session.begin(),
        ):
            return await work(session)
    finally:
        await engine.dispose()


def transact(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run(in_transaction(work))


def short_digest(digest: str | None) -> str:
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"
