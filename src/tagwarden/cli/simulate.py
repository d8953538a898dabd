"""`tagwarden simulate-fleet`: N simulated devices against a running server, live."""

from __future__ import annotations

import asyncio
import time

import httpx
import typer
from rich.live import Live
from rich.table import Table

from tagwarden.cli.common import console, err_console, labels, short_digest
from tagwarden.devices.simulator import FleetSimulator
from tagwarden.devices.states import AppStatus


def _table(sim: FleetSimulator, app: str, elapsed: float) -> Table:
    stats = sim.stats
    table = Table(title=f"simulated fleet {sim.prefix}: {len(sim.devices)} devices, {elapsed:.0f}s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in (
        ("polls", stats.polls),
        ("304 not modified", stats.not_modified),
        ("updated", stats.updates),
        ("failed (simulated)", stats.failures),
        ("errors", stats.errors),
    ):
        table.add_row(name, str(value))
    for digest, count in sim.running_counts(app).most_common(5):
        label = digest if digest in ("-", AppStatus.FAILED) else short_digest(digest)
        table.add_row(f"{app} running {label}", str(count))
    return table


async def simulate(
    url: str,
    token: str,
    devices: int,
    fail_rate: float,
    architectures: tuple[str, ...],
    labels: dict[str, str],
    app: str,
    duration: float,
    speed: float,
    seed: int | None,
) -> FleetSimulator:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        sim = FleetSimulator(
            client,
            admin_headers={"Authorization": f"Bearer {token}"},
            fail_rate=fail_rate,
            architectures=architectures,
            labels=labels,
            seed=seed,
        )
        await sim.register(devices)
        started = time.monotonic()
        with Live(_table(sim, app, 0), console=console, refresh_per_second=4) as live:
            while duration <= 0 or time.monotonic() - started < duration:
                await sim.poll_all()
                live.update(_table(sim, app, time.monotonic() - started))
                # Devices poll when the server says; ``speed`` compresses time for demos.
                wait = min((d.poll_interval for d in sim.devices), default=60.0) / speed
                await asyncio.sleep(max(0.05, wait))
        return sim


def simulate_fleet(
    devices: int = typer.Option(20, "--devices", "-n", min=1, max=100_000),
    fail_rate: float = typer.Option(0.0, "--fail-rate", min=0.0, max=1.0, help="0.1 = 10%"),
    url: str = typer.Option("http://127.0.0.1:4002", envvar="TAGWARDEN_URL"),
    token: str = typer.Option(..., envvar="TAGWARDEN_TOKEN", help="an admin API token"),
    arch: list[str] = typer.Option(["amd64"], "--arch", help="repeat to mix architectures"),
    label: list[str] = typer.Option([], "--label", help="key=value, given to every device"),
    app: str = typer.Option("redis", help="the app whose digests the display counts"),
    duration: float = typer.Option(0, help="seconds to run; 0 = until Ctrl-C"),
    speed: float = typer.Option(1.0, min=0.01, help="poll this many times faster than told"),
    seed: int | None = typer.Option(None, help="same seed, same failures"),
) -> None:
    """Run N simulated devices: register, poll with ETag, pull, report running or failed."""
    device_labels = labels(label)
    try:
        asyncio.run(
            simulate(
                url,
                token,
                devices,
                fail_rate,
                tuple(arch),
                device_labels,
                app,
                duration,
                speed,
                seed,
            )
        )
    except KeyboardInterrupt:
        pass
    except httpx.HTTPError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
