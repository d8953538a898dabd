"""`tagwarden notify`: notification channels (add, list, remove, test) and the outbox."""

from __future__ import annotations

import json

import httpx
import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.cli.common import cli_principal, console, err_console, load_settings, run, transact
from tagwarden.notify import senders, service
from tagwarden.notify.models import CHANNEL_KINDS, EVENTS, NotificationChannel

app = typer.Typer(help="Notification channels and the outbox.", no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Option(..., help="a name for the channel, e.g. ops-slack"),
    kind: str = typer.Option(..., help=f"one of: {', '.join(CHANNEL_KINDS)}"),
    url: str | None = typer.Option(None, help="slack, discord, webhook: where to POST"),
    secret: str | None = typer.Option(None, help="webhook: the HMAC secret (made up if absent)"),
    to: list[str] = typer.Option([], help="email: a recipient (repeat for more)"),
    event: list[str] = typer.Option(
        ["*"], help=f"an event to send (repeat); '*' for all: {', '.join(EVENTS)}"
    ),
) -> None:
    """Add a channel. A webhook channel's secret is printed once."""
    config: dict[str, object] = {}
    if url:
        config["url"] = url
    if secret:
        config["secret"] = secret
    if to:
        config["to"] = to

    async def work(session: AsyncSession) -> NotificationChannel:
        return await service.create_channel(
            session,
            name=name,
            kind=kind,
            config=config,
            events=event,
            actor=cli_principal().identity,
        )

    channel = transact(work)
    console.print(f"Added {channel.kind} channel {channel.id} ({channel.name}).")
    if channel.kind == "webhook":
        console.print("Its signing secret (X-Tagwarden-Signature), shown once:")
        print(channel.config["secret"])


@app.command("list")
def list_cmd() -> None:
    """List channels (URLs and secrets redacted)."""
    channels = list(transact(service.list_channels))
    table = Table("id", "name", "kind", "events", "config", "enabled")
    for c in channels:
        table.add_row(
            str(c.id),
            c.name,
            c.kind,
            ", ".join(c.events),
            json.dumps(service.redacted(c.config), ensure_ascii=False),
            "yes" if c.enabled else "no",
        )
    console.print(table)


@app.command("remove")
def remove(channel_id: int = typer.Argument(..., help="the channel's id")) -> None:
    """Remove a channel (and its undelivered events)."""

    async def work(session: AsyncSession) -> NotificationChannel:
        return await service.delete_channel(session, channel_id, actor=cli_principal().identity)

    channel = transact(work)
    console.print(f"Removed channel {channel.id} ({channel.name}).")


@app.command("test")
def send_test(channel_id: int = typer.Argument(..., help="the channel's id")) -> None:
    """Send a test message now and say whether the receiver took it (exit 1 if not)."""
    settings = load_settings()

    async def work(session: AsyncSession) -> NotificationChannel:
        return await service.get_channel(session, channel_id)

    async def deliver(channel: NotificationChannel) -> str | None:
        async with httpx.AsyncClient() as http:
            return await senders.send_test(
                channel.kind,
                channel.config,
                channel_name=channel.name,
                requested_by=cli_principal().identity,
                http=http,
                settings=settings,
            )

    # The channel is read in its own transaction; none stays open while the receiver answers.
    error = run(deliver(transact(work)))
    if error:
        err_console.print(f"[red]error:[/red] test message not delivered: {error}")
        raise typer.Exit(1)
    console.print(f"Test message delivered to channel {channel_id}.")


@app.command("outbox")
def outbox() -> None:
    """How many deliveries are pending, delivered and failed, and the latest errors."""

    async def work(session: AsyncSession) -> tuple[dict[str, int], list[dict[str, object]]]:
        return await service.outbox_counts(session), await service.recent_failures(session)

    counts, failures = transact(work)
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    for f in failures:
        console.print(
            f"  #{f['delivery_id']} {f['event']} → channel {f['channel_id']} "
            f"({f['status']}, {f['attempts']} attempts): {f['last_error']}"
        )
