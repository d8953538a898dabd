"""`tagwarden rules`: an image's approval rules (list, add, remove) and its four-eyes policy."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.approvals import policies
from tagwarden.catalogue.models import ImagePolicy
from tagwarden.cli.common import cli_principal, console, transact
from tagwarden.rules import service
from tagwarden.rules.models import RULE_KINDS, ApprovalRule

app = typer.Typer(
    help="Approval rules per image (auto-approval) and four-eyes.", no_args_is_help=True
)
IMAGE_ID = typer.Argument(..., help="the image's id (see `tagwarden images list`)")


@app.command("list")
def list_cmd(image_id: int = IMAGE_ID) -> None:
    """List the image's rules, in the order they were made."""

    async def work(session: AsyncSession) -> Sequence[ApprovalRule]:
        return await service.list_rules(session, image_id)

    table = Table("id", "name", "kind", "pattern", "min age", "enabled", "created by")
    for r in transact(work):
        table.add_row(
            str(r.id),
            r.name,
            r.kind,
            r.pattern or "-",
            f"{r.min_age_hours} h",
            "yes" if r.enabled else "no",
            r.created_by or "-",
        )
    console.print(table)


@app.command("add")
def add(
    image_id: int = IMAGE_ID,
    name: str = typer.Option(..., help="a name, recorded as reviewed_by rule:<name>"),
    kind: str = typer.Option(
        ...,
        help=f"one of: {', '.join(RULE_KINDS)} (patch/minor: a bump of the newest activated "
        "tag; range: e.g. '>=7.2,<8'; regex: the whole tag matches)",
    ),
    pattern: str | None = typer.Option(None, help="range and regex rules: what to match"),
    min_age_hours: int = typer.Option(
        0, help="approve only once the tag is this old (registry date, else first seen)"
    ),
) -> None:
    """Add a rule that approves matching tags of the image by itself."""

    async def work(session: AsyncSession) -> ApprovalRule:
        return await service.add_rule(
            session,
            image_id,
            name=name,
            kind=kind,
            pattern=pattern,
            min_age_hours=min_age_hours,
            actor=cli_principal().identity,
        )

    rule = transact(work)
    console.print(f"Added rule {rule.id} ({rule.name}: {rule.kind} {rule.pattern or ''}).")


@app.command("remove")
def remove(
    image_id: int = IMAGE_ID, rule_id: int = typer.Argument(..., help="the rule's id")
) -> None:
    """Remove a rule; requests it holds wait for a person again."""

    async def work(session: AsyncSession) -> ApprovalRule:
        return await service.delete_rule(session, image_id, rule_id, actor=cli_principal().identity)

    rule = transact(work)
    console.print(f"Removed rule {rule.id} ({rule.name}).")


@app.command("policy")
def policy(
    image_id: int = IMAGE_ID,
    required_approvals: int | None = typer.Option(
        None, min=1, help="set how many distinct approvers a request needs (2: four-eyes)"
    ),
) -> None:
    """Show the image's approval policy, or change how many approvers it needs."""

    async def work(session: AsyncSession) -> ImagePolicy:
        if required_approvals is None:
            return await policies.get_policy(session, image_id)
        return await policies.set_policy(
            session,
            image_id,
            actor=cli_principal().identity,
            required_approvals=required_approvals,
        )

    found = transact(work)
    console.print(f"required approvals: {found.required_approvals or 1}")
    console.print(f"webhook secret: {'set' if found.webhook_secret_hash else 'not set'}")
    console.print(f"auto-rollout: {'yes' if found.rollout_template else 'no'}")
