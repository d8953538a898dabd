"""`tagwarden token`: API tokens."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.auth import service
from tagwarden.auth.models import ROLES, ApiToken
from tagwarden.cli.common import cli_principal, console, transact

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Option(..., help="what the token is for, e.g. ci-bot"),
    role: str = typer.Option(..., help=f"one of: {', '.join(ROLES)}"),
    identity: str = typer.Option(..., help="who acts with it, e.g. admin@example.com"),
) -> None:
    """Create a token. It is printed once, alone on the last line; only its hash is kept."""

    async def work(session: AsyncSession) -> tuple[ApiToken, str]:
        return await service.create_token(
            session, name=name, role=role, identity=identity, actor=cli_principal().identity
        )

    token, raw = transact(work)
    console.print(f"Created token {token.id} ({token.role}) for {token.identity}.")
    console.print("Store it now; it cannot be shown again:")
    print(raw)


@app.command("list")
def list_cmd() -> None:
    """List tokens (never their values)."""
    tokens: list[ApiToken] = list(transact(service.list_tokens))
    table = Table("id", "name", "role", "identity", "prefix", "created", "last used", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.role,
            t.identity,
            t.token_prefix + "…",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: int = typer.Argument(..., help="the token's id (see `token list`)")) -> None:
    """Revoke a token; requests with it are refused from now on."""

    async def work(session: AsyncSession) -> ApiToken:
        return await service.revoke_token(session, token_id, actor=cli_principal().identity)

    token = transact(work)
    console.print(f"Revoked token {token.id} ({token.name}, {token.identity}).")
