"""`tagwarden osv`: load OSV data an operator downloaded (never fetched from here)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import history
from tagwarden.cli.common import console, err_console, transact
from tagwarden.vulnerabilities import service
from tagwarden.vulnerabilities.importer import ImportResult
from tagwarden.vulnerabilities.osv import OsvFormatError, count_records, files_in, read_file
from tagwarden.vulnerabilities.service import RematchResult

app = typer.Typer(help="OSV vulnerability data on disk.", no_args_is_help=True)


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="a directory of OSV JSON files or all.zip archives"),
) -> None:
    """Import the records (a record's `modified` decides whether it replaces the stored one),
    re-match every stored SBOM in review or deployable, and apply the recalls that follow."""
    try:
        files = files_in(path)
    except OsvFormatError as exc:
        err_console.print(f"error: {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    total = count_records(files)

    async def work(session: AsyncSession) -> tuple[ImportResult, RematchResult]:
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("importing OSV records", total=total)
            records = (r for f in files for r in read_file(f))
            return await service.import_and_rematch(
                session,
                records,
                live=await history.live_digests(session),
                previous_of=history.previous_approved_many,
                actor="cli:osv-import",
                progress=lambda n: bar.advance(task, n),
            )

    try:
        imported, matched = transact(work)
    except OsvFormatError as exc:
        err_console.print(f"error: {exc} (nothing was imported)", soft_wrap=True)
        raise typer.Exit(2) from exc
    date = imported.data_date.isoformat() if imported.data_date else "none"
    console.print(
        f"OSV records: {imported.read} read, {imported.added} added, {imported.replaced} "
        f"replaced, {imported.unchanged} unchanged; data date {date}"
    )
    console.print(
        f"re-matched {matched.digests} SBOM(s), {matched.packages} packages: "
        f"{matched.findings} findings, {matched.new_findings} new"
    )
    for r in matched.recalled:
        console.print(
            f"recalled image {r.image_id} tag {r.tag} ({r.digest}): {', '.join(r.ids)}; "
            f"paused rollouts: {', '.join(map(str, r.paused_rollouts)) or 'none'}"
        )
