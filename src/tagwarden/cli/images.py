"""`tagwarden images`: the catalogue."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import service as approvals
from tagwarden.catalogue import service
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.catalogue.schemas import ImageCreate, ImageUpdate
from tagwarden.cli.common import (
    checked,
    cli_principal,
    console,
    load_settings,
    short_digest,
    transact,
)

app = typer.Typer(help="Images in the catalogue: add, list, show.", no_args_is_help=True)


@app.command("add")
def add(
    image_name: str = typer.Argument(..., help="e.g. redis"),
    namespace: str = typer.Option("library", help="e.g. grafana, or org/team"),
    registry: str = typer.Option("docker.io", help="e.g. ghcr.io, quay.io, 127.0.0.1:5000"),
    category: str | None = typer.Option(None),
    description: str | None = typer.Option(None),
    watch: bool = typer.Option(False, "--watch", help="monitor it for new tags"),
    tag_policy: str = typer.Option("latest", help="latest: one request per scan; all: one per tag"),
    tag_include: str | None = typer.Option(None, help="only tags matching this regex"),
    tag_exclude: str | None = typer.Option(None, help="never tags matching this regex"),
    watch_tag: list[str] = typer.Option(
        [], "--watch-tag", help="a tag whose re-push every rescan looks for (repeatable)"
    ),
) -> None:
    """Add an image to the catalogue, approved (the CLI acts as an admin)."""
    data = checked(
        ImageCreate,
        {
            "image_name": image_name,
            "namespace": namespace,
            "registry": registry,
            "category": category,
            "description": description,
            "watch_for_updates": watch,
            "tag_policy": tag_policy,
            "tag_include": tag_include,
            "tag_exclude": tag_exclude,
            "watch_tags": watch_tag,
        },
    )

    settings = load_settings()

    async def work(session: AsyncSession) -> Image:
        return await approvals.add_image(session, data, cli_principal(), settings)

    image = transact(work)
    console.print(f"Added image {image.id}: {image.display_name} ({image.approval_status})")


@app.command("watch-tags")
def watch_tags(
    image_id: int = typer.Argument(...),
    tags: list[str] = typer.Argument(None, help="the whole list; none clears it"),
) -> None:
    """Set the tags whose re-push every rescan looks for (e.g. latest)."""
    patch = checked(ImageUpdate, {"watch_tags": tags or []})

    async def work(session: AsyncSession) -> Image:
        return await service.update_image(session, image_id, patch, cli_principal())

    image = transact(work)
    shown = ", ".join(image.watch_tags) or "none"
    console.print(f"Image {image.id} ({image.display_name}) watches tags: {shown}")


@app.command("list")
def list_cmd(limit: int = typer.Option(100, min=1, max=1000)) -> None:
    """List the catalogue."""

    async def work(session: AsyncSession) -> list[Image]:
        rows, _ = await service.list_images(session, limit=limit)
        return list(rows)

    table = Table("id", "image", "registry", "status", "watched", "last checked", "last error")
    for image in transact(work):
        table.add_row(
            str(image.id),
            image.display_name,
            image.registry_host,
            image.approval_status,
            "yes" if image.watch_for_updates else "no",
            f"{image.last_checked_at:%Y-%m-%d %H:%M}" if image.last_checked_at else "-",
            (image.last_error or "-")[:60],
        )
    console.print(table)


@app.command("show")
def show(image_id: int = typer.Argument(...)) -> None:
    """Show an image and its activated tags."""

    async def work(session: AsyncSession) -> tuple[Image, list[ImageTag]]:
        image = await service.get_image(session, image_id)
        return image, list(await service.list_tags(session, image_id))

    image, tags = transact(work)
    console.print(f"[bold]{image.display_name}[/bold]  (id {image.id}, {image.approval_status})")
    console.print(f"  repository  {image.registry_host}/{image.repository}")
    console.print(
        f"  monitoring  {'on' if image.watch_for_updates else 'off'}, policy {image.tag_policy}"
    )
    if image.watch_tags:
        console.print(f"  watch tags  {', '.join(image.watch_tags)}")
    if image.last_error:
        console.print(f"  last error  {image.last_error}")
    table = Table("tag", "architecture", "digest", "last updated", "flags")
    for tag in tags:
        flags = ", ".join(
            name
            for name, on in (("recommended", tag.is_recommended), ("deprecated", tag.is_deprecated))
            if on
        )
        table.add_row(
            tag.tag,
            tag.architecture,
            short_digest(tag.digest),
            f"{tag.last_updated:%Y-%m-%d %H:%M}" if tag.last_updated else "-",
            flags or "-",
        )
    console.print(table)
