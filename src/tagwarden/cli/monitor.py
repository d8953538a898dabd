"""`tagwarden monitor` and `tagwarden images check`: the image monitor from the shell."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tagwarden import __version__
from tagwarden.cli.common import console, load_settings, run
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.monitor import service
from tagwarden.monitor.worker import ImageMonitor, RunSummary

app = typer.Typer(help="The image monitor: scan registries for new tags.", no_args_is_help=True)
T = TypeVar("T")


async def _with_monitor(
    work: Callable[[ImageMonitor], Awaitable[T]],
    on_result: Callable[[service.CheckResult], None] | None = None,
) -> T:
    settings = load_settings()
    engine = make_engine(settings.database_url)
    async with httpx.AsyncClient(
        timeout=settings.registry_timeout_seconds,
        headers={"User-Agent": f"tagwarden/{__version__}"},
        follow_redirects=False,  # registry/transport.py follows them, checking every hop
    ) as http:
        monitor = ImageMonitor(settings, make_sessionmaker(engine), http, on_result=on_result)
        try:
            return await work(monitor)
        finally:
            await engine.dispose()


def summary_table(summary: RunSummary) -> Table:
    table = Table("image", "tags seen", "new", "re-pushed", "requests created", "error")
    for r in summary.results:
        table.add_row(
            r.image_name,
            str(r.tags_seen),
            str(r.new_tags),
            str(r.changed_tags),
            ", ".join(r.requests_created) or "-",
            (r.error or "-")[:80],
        )
    return table


@app.command("run-once")
def run_once(
    all_images: bool = typer.Option(
        False, "--all", help="check every monitored image now, not only the due ones"
    ),
    verbose: bool = typer.Option(False, "-v", help="print the [ImageMonitor] log lines"),
) -> None:
    """Check the due (or --all) monitored images once, with a progress bar and a summary."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    with Progress(
        TextColumn("[bold]checking images"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scan", total=None, last="")

        def advance(result: service.CheckResult) -> None:
            progress.update(task, advance=1, last=result.image_name)

        async def work(monitor: ImageMonitor) -> RunSummary:
            return await monitor.run_once(
                force=all_images, on_claimed=lambda n: progress.update(task, total=n)
            )

        summary = run(_with_monitor(work, on_result=advance))
    console.print(summary_table(summary))
    console.print(
        f"{summary.images_checked} images checked, {summary.requests_created} approval requests "
        f"created, {summary.errors} errors"
        + (
            f", {summary.deferred_for_budget} deferred (registry budget)"
            if summary.deferred_for_budget
            else ""
        )
    )
    if summary.errors:
        raise typer.Exit(1)


def check_image(image_id: int = typer.Argument(..., help="the image's id")) -> None:
    """Check one image for new tags now."""

    async def work(monitor: ImageMonitor) -> service.CheckResult:
        async with monitor.sessionmaker() as session:
            image = await service.checkable_image(session, image_id)
        return await monitor.check(image)

    result = run(_with_monitor(work))
    if result.error:
        console.print(f"[red]error:[/red] {result.image_name}: {result.error}")
        raise typer.Exit(1)
    console.print(
        f"{result.image_name}: {result.tags_seen} tags seen, {result.new_tags} new, "
        f"{result.changed_tags} re-pushed; requests created: "
        f"{', '.join(result.requests_created) or 'none'}"
    )
