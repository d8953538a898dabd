"""`tagwarden approvals`: review and activation from the shell (the seed's process script)."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import approving, service
from tagwarden.approvals.activation import Activation
from tagwarden.approvals.approving import AfterApproval, DecisionResult
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import ALL, RequestStatus
from tagwarden.cli.common import cli_principal, console, load_settings, short_digest, transact

app = typer.Typer(
    help="Approval requests: list, show, approve, reject, process.", no_args_is_help=True
)

IDENTITY = typer.Option(None, "--as", help="identity recorded as reviewer (default cli:<user>)")


@app.command("list")
def list_cmd(
    status: str = typer.Option(
        RequestStatus.PENDING.value, help=f"{', '.join(RequestStatus)} or {ALL}"
    ),
    image_id: int | None = typer.Option(None, help="only this image's requests"),
    limit: int = typer.Option(100, min=1, max=1000),
) -> None:
    """List approval requests (pending by default)."""

    async def work(session: AsyncSession) -> list[ApprovalRequest]:
        rows, _ = await service.list_requests(
            session, status=None if status == ALL else status, image_id=image_id, limit=limit
        )
        return list(rows)

    table = Table("id", "image:tag", "status", "digest", "architectures", "last updated", "source")
    for r in transact(work):
        table.add_row(
            str(r.id),
            f"{r.image_name}:{r.tag_name}" if r.tag_name else f"{r.image_name} (image)",
            r.status,
            short_digest(r.digest),
            ", ".join(r.metadata_.get("architectures") or []) or "-",
            str(r.metadata_.get("last_updated") or "-"),
            r.source,
        )
    console.print(table)


@app.command("show")
def show(request_id: int) -> None:
    """Show one request with its metadata and decision."""

    async def work(session: AsyncSession) -> ApprovalRequest:
        return await service.get_request(session, request_id)

    r = transact(work)
    console.print(f"[bold]#{r.id}[/bold] {r.image_name}:{r.tag_name or '(image)'} — {r.status}")
    for label, value in (
        ("digest", r.digest),
        ("architectures", ", ".join(r.metadata_.get("architectures") or [])),
        ("last updated", r.metadata_.get("last_updated")),
        ("source", r.source),
        ("requested", f"{r.requested_at:%Y-%m-%d %H:%M} by {r.requested_by or '-'}"),
        (
            "reviewed",
            f"{r.reviewed_at:%Y-%m-%d %H:%M} by {r.reviewed_by}" if r.reviewed_at else None,
        ),
        ("notes", r.notes),
        ("processed", f"{r.processed_at:%Y-%m-%d %H:%M}" if r.processed_at else None),
    ):
        console.print(f"  {label:<14}{value or '-'}")


def _decide(request_id: int, approve: bool, notes: str | None, identity: str | None) -> None:
    settings = load_settings()

    async def work(session: AsyncSession) -> DecisionResult:
        return await approving.decide(
            session,
            request_id,
            approve=approve,
            notes=notes,
            actor=cli_principal(identity),
            then=AfterApproval.of(settings),
        )

    result = transact(work)
    r = result.request
    console.print(
        f"{'✅ Approved' if approve else '❌ Rejected'} approval request {r.id} "
        f"({r.image_name}:{r.tag_name or '(image)'}) as {r.reviewed_by}"
    )
    if result.activation:
        print_activation(result.activation)


@app.command("approve")
def approve(
    request_id: int,
    notes: str | None = typer.Option(None, help="why, for the audit trail"),
    identity: str | None = IDENTITY,
) -> None:
    """Approve a pending request (and activate it, when auto-processing is on)."""
    _decide(request_id, True, notes, identity)


@app.command("reject")
def reject(
    request_id: int,
    notes: str | None = typer.Option(None, help="why, for the audit trail"),
    identity: str | None = IDENTITY,
) -> None:
    """Reject a pending request."""
    _decide(request_id, False, notes, identity)


@app.command("process")
def process(request_id: int, identity: str | None = IDENTITY) -> None:
    """Activate an approved request into image_tags (seed 000's process-approved-tag.js)."""

    settings = load_settings()

    async def work(session: AsyncSession) -> Activation:
        return await approving.activate(
            session,
            request_id,
            actor=cli_principal(identity),
            poll_interval=settings.device_poll_interval_seconds,
        )

    print_activation(transact(work))


def print_activation(done: Activation) -> None:
    """The seed's output, line for line."""
    request_id = done.request.id
    if done.request.tag_name is None:
        console.print(f"✅ Approved image {done.image.display_name} into the catalogue")
        console.print(f"✅ Successfully processed approval request {request_id}")
        return
    console.print(f"Processing approved tag: {done.reference}")
    if done.already_processed:
        console.print(f"Approval request {request_id} was already processed; nothing added")
        return
    for index, arch in enumerate(done.created):
        if index == 0:
            console.print(f"✅ Added {done.reference} to image_tags")
        else:
            console.print(f"   ✅ Added architecture variant: {arch}")
    for arch in done.updated:
        console.print(f"   ✅ Updated digest for architecture: {arch}")
    console.print(f"✅ Successfully processed approval request {request_id}")
