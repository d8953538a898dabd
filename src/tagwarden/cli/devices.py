"""`tagwarden devices`: register and list devices."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.cli.common import checked, cli_principal, console, labels, transact
from tagwarden.devices import service
from tagwarden.devices.models import Device
from tagwarden.devices.schemas import DeviceCreate

app = typer.Typer(help="Devices: register, list.", no_args_is_help=True)


@app.command("add")
def add(
    uuid: str = typer.Argument(..., help="the device's uuid"),
    architecture: str = typer.Option("amd64", "--arch", help="amd64, arm64, arm/v7, …"),
    name: str | None = typer.Option(None),
    label: list[str] = typer.Option([], "--label", help="key=value; repeat for more"),
) -> None:
    """Register a device and print its key (shown once)."""
    data = checked(
        DeviceCreate,
        {
            "uuid": uuid,
            "name": name,
            "architecture": architecture,
            "labels": labels(label),
        },
    )

    async def work(session: AsyncSession) -> tuple[Device, str]:
        return await service.register(session, data, cli_principal())

    device, key = transact(work)
    console.print(f"Registered device {device.uuid} ({device.architecture})")
    console.print(f"device key (shown once): {key}")


@app.command("list")
def list_cmd(limit: int = typer.Option(100, min=1, max=10_000)) -> None:
    """List devices."""

    async def work(session: AsyncSession) -> list[Device]:
        rows, _ = await service.list_devices(session, limit=limit)
        return list(rows)

    table = Table("uuid", "name", "architecture", "labels", "last seen")
    for device in transact(work):
        table.add_row(
            device.uuid,
            device.name,
            device.architecture,
            ", ".join(f"{k}={v}" for k, v in device.labels.items()) or "-",
            f"{device.last_seen_at:%Y-%m-%d %H:%M:%S}" if device.last_seen_at else "never",
        )
    console.print(table)
