"""Rollout routes: thin, each one service call and a schema."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.auth.deps import Admin, Approver, AppSettings, Now, Session, Sessions, Viewer
from tagwarden.auth.service import Principal
from tagwarden.db import transaction
from tagwarden.errors import error_responses
from tagwarden.evidence.deps import Checker
from tagwarden.inputs import IdPath
from tagwarden.pagination import Page, Paging
from tagwarden.rollouts import actions, service
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.schemas import (
    BatchOut,
    PlanOut,
    RolloutCreate,
    RolloutDeviceOut,
    RolloutOut,
    SkippedOut,
)
from tagwarden.rollouts.states import RolloutAction, RolloutStatus

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])


async def _summary(session: AsyncSession, rollout: Rollout) -> RolloutOut:
    """The rollout with its devices, batches and counts, all from one read of its devices."""
    rows = await service.device_rows(session, rollout.id)
    counts: Counter[str] = Counter(row.state for row, _ in rows)
    out = RolloutOut.of(rollout, dict(counts), service.failure_reasons(rows))
    batches: dict[int, list[str]] = defaultdict(list)
    batch_counts: dict[int, Counter[str]] = defaultdict(Counter)
    for row, uuid in rows:
        if row.batch is not None:
            batches[row.batch].append(uuid)
            batch_counts[row.batch][row.state] += 1
    out.batches = [
        BatchOut(batch=b, devices=d, counts=dict(batch_counts[b]))
        for b, d in sorted(batches.items())
    ]
    out.skipped = [
        SkippedOut(device=uuid, reason=row.skip_reason or "")
        for row, uuid in rows
        if row.batch is None
    ]
    out.devices = [
        RolloutDeviceOut(
            device=uuid,
            batch=row.batch,
            state=row.state,
            skip_reason=row.skip_reason,
            failure_reason=row.failure_reason,
            message=row.message,
            scheduled_at=row.scheduled_at,
            finished_at=row.finished_at,
            download_bytes=row.download_bytes,
        )
        for row, uuid in rows
    ]
    planned = [row.download_bytes for row, _ in rows if row.batch is not None]
    if planned and all(b is not None for b in planned):
        out.download_bytes_total = sum(b for b in planned if b is not None)
    return out


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PlanOut, "description": "dry run: the plan, nothing created"},
        **error_responses(404, 409),
    },
)
async def create_rollout(
    body: RolloutCreate,
    session: Session,
    who: Approver,
    settings: AppSettings,
    now: Now,
    checker: Checker,
    sessions: Sessions,
    response: Response,
) -> RolloutOut | PlanOut:
    # The signature is checked against the registry now, before anything is written (no
    # write lock is held while the registry answers); prepare's gate reads the result.
    async with transaction(sessions) as reading:
        target = await service.target_of(reading, body)
    if target is not None:
        await checker.refresh(*target, tag=body.tag)
    prepared = await service.prepare(
        session, body, now=now, poll_interval=settings.device_poll_interval_seconds
    )
    if body.dry_run:
        response.status_code = status.HTTP_200_OK
        return PlanOut(
            image=prepared.image.display_name,
            tag=body.tag,
            digest=prepared.digest,
            app=prepared.app_name,
            strategy=body.strategy,
            options=body.options.model_dump(),
            batches=[
                BatchOut(batch=n, devices=b) for n, b in enumerate(prepared.plan.batches, start=1)
            ],
            skipped=[SkippedOut(device=s.uuid, reason=s.reason) for s in prepared.plan.skipped],
            download_bytes=prepared.downloads,
            download_bytes_total=prepared.download_total,
        )
    rollout = await service.create(session, body, prepared, who)
    return await _summary(session, rollout)


@router.get("")
async def list_rollouts(
    session: Session,
    _: Viewer,
    paging: Paging,
    status: Annotated[RolloutStatus | None, Query()] = None,
) -> Page[RolloutOut]:
    rows, total = await service.list_rollouts(
        session, status=status, limit=paging.limit, offset=paging.offset
    )
    counts = await service.counts(session, [r.id for r in rows])
    items = [RolloutOut.of(r, counts[r.id], {}) for r in rows]
    return Page(items=items, total=total, **paging.model_dump())


@router.get("/{rollout_id}")
async def get_rollout(rollout_id: IdPath, session: Session, _: Viewer) -> RolloutOut:
    rollout = await service.get_rollout(session, rollout_id)
    return await _summary(session, rollout)


async def _act(
    action: RolloutAction, rollout_id: int, session: AsyncSession, who: Principal, now: datetime
) -> RolloutOut:
    rollout = await actions.act(session, rollout_id, action, who, now)
    return await _summary(session, rollout)


@router.post("/{rollout_id}/pause", responses=error_responses(409))
async def pause(rollout_id: IdPath, session: Session, who: Approver, now: Now) -> RolloutOut:
    return await _act(RolloutAction.PAUSE, rollout_id, session, who, now)


@router.post("/{rollout_id}/resume", responses=error_responses(409))
async def resume(rollout_id: IdPath, session: Session, who: Approver, now: Now) -> RolloutOut:
    return await _act(RolloutAction.RESUME, rollout_id, session, who, now)


@router.post("/{rollout_id}/abort", responses=error_responses(409))
async def abort(rollout_id: IdPath, session: Session, who: Approver, now: Now) -> RolloutOut:
    return await _act(RolloutAction.ABORT, rollout_id, session, who, now)


@router.post("/{rollout_id}/rollback", responses=error_responses(409))
async def rollback(rollout_id: IdPath, session: Session, who: Approver, now: Now) -> RolloutOut:
    return await _act(RolloutAction.ROLLBACK, rollout_id, session, who, now)


@router.post("/{rollout_id}/close", responses=error_responses(409))
async def close(rollout_id: IdPath, session: Session, who: Admin, now: Now) -> RolloutOut:
    """A continuous rollout takes no more devices; it completes once its devices are done."""
    rollout = await actions.close(session, rollout_id, who, now)
    return await _summary(session, rollout)
