"""Rollouts: the list, the create form, and the detail page whose progress updates live."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.auth.deps import AppSettings, Now, Session
from tagwarden.catalogue import service as catalogue
from tagwarden.devices import service as devices
from tagwarden.devices.schemas import parse_labels
from tagwarden.errors import InvalidInput
from tagwarden.rollouts import actions, service
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.schemas import RolloutCreate
from tagwarden.rollouts.states import (
    ACTIVE,
    IN_FLIGHT,
    DeviceState,
    RolloutAction,
    RolloutStatus,
    allowed_from,
)
from tagwarden.web.render import WebRoute, page, redirect
from tagwarden.web.session import PostingUser, WebUser, need

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 50
FORM_DEVICES = 500  # the create form lists this many devices; larger fleets use a selector
OK, BAD, BUSY = (DeviceState.SUCCEEDED,), (DeviceState.FAILED, DeviceState.ROLLED_BACK), IN_FLIGHT
# The buttons of the detail page, each shown while the rollout's status allows its action.
ACTIONS = {action: allowed_from(action) for action in RolloutAction}


def _tally(counts: dict[str, int]) -> dict[str, int]:
    """Counts by state → the progress bar's parts; skipped devices are not part of the rollout."""
    return {
        "ok": sum(counts.get(s, 0) for s in OK),
        "bad": sum(counts.get(s, 0) for s in BAD),
        "busy": sum(counts.get(s, 0) for s in BUSY),
        "total": sum(n for s, n in counts.items() if s != DeviceState.SKIPPED),
    }


async def progress(session: AsyncSession, rollout: Rollout) -> dict[str, Any]:
    """What the detail page shows and its poll returns: batches, devices, overall."""
    rows = await service.device_rows(session, rollout.id)
    batches: dict[int, list[str]] = {}
    for row, _uuid in rows:
        if row.batch is not None:
            batches.setdefault(row.batch, []).append(row.state)
    batch_list = []
    for index, states in sorted(batches.items()):
        tally = _tally(Counter(states))
        text = f"{tally['ok']}/{tally['total']} succeeded"
        if tally["bad"]:
            text += f", {tally['bad']} failed"
        if tally["busy"]:
            text += f", {tally['busy']} updating"
        batch_list.append({"index": index, "text": text, **tally})
    overall = _tally(Counter(row.state for row, _ in rows if row.batch is not None))
    failures = service.failure_reasons(rows)
    summary = f"{overall['ok']} of {overall['total']} devices updated"
    if rollout.current_batch:
        summary += f"; batch {rollout.current_batch} of {rollout.batch_count}"
    if rollout.status_reason:
        summary += f" ({rollout.status_reason})"
    return {
        "id": rollout.id,
        "status": rollout.status,
        "finished": rollout.status not in ACTIVE,
        "summary": summary,
        "overall": overall,
        "batches": batch_list,
        "failures": failures,
        "devices": [
            {
                "id": row.id,
                "uuid": uuid,
                "batch": row.batch,
                "state": row.state,
                "reason": row.failure_reason or row.skip_reason,
                "message": row.message,
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            }
            for row, uuid in rows
        ],
    }


async def deployable_tags(session: AsyncSession) -> list[dict[str, Any]]:
    """Approved images with their activated, non-deprecated tags: all a rollout may use."""
    out = []
    for image, rows in await catalogue.deployable_tags(session):
        tags: dict[str, list[str]] = {}
        recommended: set[str] = set()
        # A recalled tag is still listed, marked, so the form says why its rollout is refused.
        recalled: dict[str, str] = {}
        for row in rows:
            tags.setdefault(row.tag, []).append(row.architecture)
            if row.is_recommended:
                recommended.add(row.tag)
            if row.is_recalled:
                recalled.setdefault(row.tag, row.recall_reason or "no reason given")
        out.append(
            {
                "image": image,
                "tags": [
                    {
                        "tag": t,
                        "architectures": a,
                        "recommended": t in recommended,
                        "recalled": recalled.get(t),
                    }
                    for t, a in tags.items()
                ],
            }
        )
    return out


@router.get("/rollouts")
async def rollouts(
    request: Request,
    session: Session,
    user: WebUser,
    status: Annotated[str, Query(max_length=16)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows, total = await service.list_rollouts(
        session, status=status or None, limit=PAGE_SIZE, offset=offset
    )
    counts = await service.counts(session, [r.id for r in rows])
    can_create = user.has("approver")
    fleet, _fleet_total = (
        await devices.list_devices(session, limit=FORM_DEVICES) if can_create else ([], 0)
    )
    return page(
        request,
        "rollouts.html",
        {
            "rows": rows,
            "counts": counts,
            "tally": _tally,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "status": status,
            "statuses": list(RolloutStatus),
            "can_create": can_create,
            "targets": await deployable_tags(session) if can_create else [],
            "fleet": fleet,
        },
    )


def _labels(text: str) -> dict[str, str] | None:
    text = text.strip()
    if not text:
        return None
    return parse_labels(text.replace("\n", ",").split(","), what="selector")


@router.post("/rollouts")
async def create_rollout(
    request: Request,
    session: Session,
    user: PostingUser,
    settings: AppSettings,
    now: Now,
    target: Annotated[str, Form(max_length=200)],
    strategy: Annotated[Literal["canary", "batched", "all-at-once"], Form()] = "canary",
    devices_: Annotated[list[str], Form(alias="devices")] = [],  # noqa: B006 - copied per request
    selector: Annotated[str, Form(max_length=2000)] = "",
    app: Annotated[str, Form(max_length=100)] = "",
    canary_count: Annotated[int | None, Form(ge=1)] = None,
    batch_size: Annotated[int | None, Form(ge=1)] = None,
    bake_seconds: Annotated[int, Form(ge=0)] = 30,
    health_timeout: Annotated[int, Form(ge=1)] = 600,
    max_failures: Annotated[str, Form(max_length=8)] = "0",
    on_failure: Annotated[Literal["pause", "rollback"], Form()] = "pause",
) -> RedirectResponse:
    need(user, "approver")
    image_id, _, tag = target.partition(":")
    if not image_id.isdigit() or not tag:
        raise InvalidInput("choose an approved tag to roll out")
    labels = _labels(selector)
    options: dict[str, Any] = {
        "bake_seconds": bake_seconds,
        "health_timeout": health_timeout,
        "max_failures": int(max_failures) if max_failures.strip().isdigit() else max_failures,
        "on_failure": on_failure,
    }
    if strategy == "canary" and canary_count:
        options["canary_count"] = canary_count
    if strategy != "all-at-once" and batch_size:
        options["batch_size"] = batch_size
    try:
        body = RolloutCreate.model_validate(
            {
                "image_id": int(image_id),
                "tag": tag,
                "devices": None if labels is not None else (devices_ or None),
                "selector": labels,
                "app": app.strip() or None,
                "strategy": strategy,
                "options": options,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(first["msg"].removeprefix("Value error, ")) from exc
    if body.devices is None and body.selector is None:
        raise InvalidInput("choose devices, or give a label selector")
    prepared = await service.prepare(
        session, body, now=now, poll_interval=settings.device_poll_interval_seconds
    )
    created = await service.create(session, body, prepared, user)
    return redirect(
        request,
        f"/rollouts/{created.id}",
        f"Rollout #{created.id} of {created.image}:{created.tag} created "
        f"({created.batch_count} batches)",
    )


@router.get("/rollouts/{rollout_id}")
async def rollout_detail(
    request: Request, rollout_id: int, session: Session, user: WebUser
) -> HTMLResponse:
    rollout = await service.get_rollout(session, rollout_id)
    return page(
        request,
        "rollout.html",
        {
            "rollout": rollout,
            "live": await progress(session, rollout),
            "actions": ACTIONS if user.has("approver") else {},
        },
    )


@router.get("/rollouts/{rollout_id}/progress.json")
async def rollout_progress(rollout_id: int, session: Session, _: WebUser) -> JSONResponse:
    rollout = await service.get_rollout(session, rollout_id)
    return JSONResponse(await progress(session, rollout), headers={"Cache-Control": "no-store"})


@router.post("/rollouts/{rollout_id}/{action}")
async def act(
    request: Request,
    rollout_id: int,
    action: RolloutAction,
    session: Session,
    user: PostingUser,
    now: Now,
) -> RedirectResponse:
    need(user, "approver")
    rollout = await actions.act(session, rollout_id, action, user, now)
    return redirect(request, f"/rollouts/{rollout_id}", f"Rollout #{rollout.id}: {rollout.status}")
