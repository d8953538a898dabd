"""`tagwarden rollouts`: list and show rollouts (create them through the API or this)."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.cli.common import (
    checked,
    cli_principal,
    console,
    labels,
    load_settings,
    short_digest,
    transact,
)
from tagwarden.db import utcnow
from tagwarden.rollouts import actions, service
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.schemas import RolloutCreate
from tagwarden.rollouts.states import PAST, RolloutAction

app = typer.Typer(
    help="Rollouts: create, list, show, pause, resume, abort, rollback.", no_args_is_help=True
)


@app.command("create")
def create(
    image: str = typer.Argument(..., help="e.g. redis"),
    tag: str = typer.Argument(..., help="an approved tag, e.g. 7.2.5-alpine"),
    device: list[str] = typer.Option([], "--device", "-d", help="a uuid; repeat for more"),
    label: list[str] = typer.Option([], "--label", help="select devices by key=value"),
    strategy: str = typer.Option("canary", help="all-at-once, canary or batched"),
    batch_size: int | None = typer.Option(None),
    bake_seconds: int = typer.Option(30),
    dry_run: bool = typer.Option(False, "--dry-run"),
) -> None:
    """Create a rollout (or print its plan with --dry-run)."""
    body = checked(
        RolloutCreate,
        {
            "image": image,
            "tag": tag,
            "devices": device or None,
            "selector": labels(label) if label else None,
            "strategy": strategy,
            "options": {"batch_size": batch_size, "bake_seconds": bake_seconds},
            "dry_run": dry_run,
        },
    )

    poll_interval = load_settings().device_poll_interval_seconds

    async def work(session: AsyncSession) -> tuple[service.Prepared, Rollout | None]:
        prepared = await service.prepare(session, body, now=utcnow(), poll_interval=poll_interval)
        if dry_run:
            return prepared, None
        return prepared, await service.create(session, body, prepared, cli_principal())

    prepared, rollout = transact(work)
    for number, batch in enumerate(prepared.plan.batches, start=1):
        console.print(f"batch {number}: {', '.join(batch)}")
    for skip in prepared.plan.skipped:
        console.print(f"skipped {skip.uuid}: {skip.reason}")
    if rollout:
        console.print(f"Created rollout {rollout.id}: {rollout.image}:{rollout.tag}")


@app.command("list")
def list_cmd(limit: int = typer.Option(50, min=1, max=1000)) -> None:
    """List rollouts, newest first."""

    async def work(session: AsyncSession) -> list[tuple[Rollout, dict[str, int]]]:
        rows, _ = await service.list_rollouts(session, limit=limit)
        counts = await service.counts(session, [r.id for r in rows])
        return [(r, counts[r.id]) for r in rows]

    table = Table("id", "image", "digest", "strategy", "status", "batch", "devices")
    for rollout, counts in transact(work):
        table.add_row(
            str(rollout.id),
            f"{rollout.image}:{rollout.tag}",
            short_digest(rollout.digest),
            rollout.strategy,
            rollout.status,
            f"{rollout.current_batch or 0}/{rollout.batch_count}",
            ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
    console.print(table)


@app.command("show")
def show(rollout_id: int = typer.Argument(...)) -> None:
    """Show a rollout's devices, batch by batch."""

    async def work(
        session: AsyncSession,
    ) -> tuple[Rollout, list[tuple[str, str, str]], dict[str, int]]:
        rollout = await service.get_rollout(session, rollout_id)
        rows = await service.device_rows(session, rollout_id)
        failures = service.failure_reasons(rows)
        out = [
            (uuid, str(row.batch or "-"), row.failure_reason or row.skip_reason or row.state)
            for row, uuid in rows
        ]
        return rollout, out, failures

    rollout, rows, failures = transact(work)
    console.print(
        f"[bold]rollout {rollout.id}[/bold] {rollout.image}:{rollout.tag} "
        f"({rollout.strategy}) {rollout.status} {rollout.status_reason or ''}"
    )
    if failures:
        console.print("failures: " + ", ".join(f"{k} {v}" for k, v in failures.items()))
    table = Table("device", "batch", "state / reason")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _operation(action: RolloutAction) -> None:
    """A command for one operator action, through the same service as the API's endpoint."""

    def command(rollout_id: int = typer.Argument(..., help="the rollout's id")) -> None:
        async def work(session: AsyncSession) -> Rollout:
            return await actions.act(session, rollout_id, action, cli_principal(), utcnow())

        rollout = transact(work)
        console.print(f"Rollout {rollout.id} {PAST[action]}: now {rollout.status}")

    command.__doc__ = f"{PAST[action].capitalize()} a rollout (as the API's /rollouts/ID/{action})."
    app.command(str(action))(command)


for _action in RolloutAction:
    _operation(_action)
