"""Every (state, action) pair of the approval request's and the image's state machines, walked
against the services: what the transition table allows succeeds and lands where the table says;
anything else is refused with the documented error and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import product

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from tagwarden.approvals import approving, service
from tagwarden.approvals import states as request_states
from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.approvals.states import RequestAction, RequestStatus
from tagwarden.auth.service import Principal
from tagwarden.catalogue import states as image_states
from tagwarden.catalogue.models import Image
from tagwarden.catalogue.states import ImageAction, ImageStatus
from tagwarden.db import utcnow
from tagwarden.errors import Conflict
from tests.factories import DIGEST, SEED_METADATA

APPROVER = Principal(identity="bob@example.com", role="approver")
REQUESTER = "alice@example.com"
NO_ACTIVATION = AfterApproval(activate=False, poll_interval_seconds=60)

# The documented refusal of each action from a state the table has no step for.
REQUEST_REFUSALS = {
    RequestAction.APPROVE: "already_decided",
    RequestAction.REJECT: "already_decided",
    RequestAction.PROCESS: "not_approved",
    RequestAction.SUPERSEDE: None,  # nothing to refuse: superseding reports False, changes nothing
}
IMAGE_REFUSAL = "image_not_pending"

Step = Callable[[AsyncSession, int], Awaitable[bool]]


async def _approve(session: AsyncSession, request_id: int) -> bool:
    await approving.decide(
        session, request_id, approve=True, notes=None, actor=APPROVER, then=NO_ACTIVATION
    )
    return True


async def _reject(session: AsyncSession, request_id: int) -> bool:
    await approving.decide(
        session, request_id, approve=False, notes=None, actor=APPROVER, then=NO_ACTIVATION
    )
    return True


async def _supersede(session: AsyncSession, request_id: int) -> bool:
    return await service.supersede(
        session, request_id, digest=DIGEST, new_digest="sha256:" + "f" * 64, actor="t", now=utcnow()
    )


async def _process(session: AsyncSession, request_id: int) -> bool:
    await approving.activate(session, request_id, actor=APPROVER, poll_interval=60)
    return True


REQUEST_STEPS: dict[RequestAction, Step] = {
    RequestAction.APPROVE: _approve,
    RequestAction.REJECT: _reject,
    RequestAction.SUPERSEDE: _supersede,
    RequestAction.PROCESS: _process,
}


async def _seed(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    image_status: str,
    request_status: str,
    tag: str | None,
) -> tuple[int, int]:
    async with sessionmaker() as session, session.begin():
        image = Image(image_name="redis", approval_status=image_status)
        session.add(image)
        await session.flush()
        request = ApprovalRequest(
            image_id=image.id,
            image_name="redis",
            tag_name=tag,
            status=request_status,
            metadata_=dict(SEED_METADATA) if tag else {"source": "manual"},
            digest=DIGEST if tag else None,
            requested_by=REQUESTER,
        )
        session.add(request)
        await session.flush()
        return image.id, request.id


async def _status_of(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: int
) -> tuple[str, str]:
    async with sessionmaker() as session:
        request = await session.get(ApprovalRequest, request_id)
        assert request is not None
        image = await session.get(Image, request.image_id)
        assert image is not None
        return request.status, image.approval_status


def test_every_action_of_both_machines_has_a_documented_outcome() -> None:
    assert set(REQUEST_STEPS) == set(RequestAction) == set(REQUEST_REFUSALS)
    assert {s for s, _ in request_states.TRANSITIONS} <= set(RequestStatus)
    assert {s for s, _ in image_states.TRANSITIONS} <= set(ImageStatus)


@pytest.mark.parametrize(("status", "action"), list(product(RequestStatus, RequestAction)))
async def test_a_request_action_succeeds_exactly_where_the_table_allows_it(
    sessionmaker: async_sessionmaker[AsyncSession], status: RequestStatus, action: RequestAction
) -> None:
    _, request_id = await _seed(
        sessionmaker, image_status=ImageStatus.APPROVED, request_status=status, tag="7.2.5"
    )
    allowed = request_states.allows(status, action)
    refusal = REQUEST_REFUSALS[action]
    outcome: bool | str
    try:
        async with sessionmaker() as session, session.begin():
            outcome = await REQUEST_STEPS[action](session, request_id)
    except Conflict as exc:
        outcome = str(exc.code)
    after, _ = await _status_of(sessionmaker, request_id)
    if allowed:
        assert outcome is True
        assert after == request_states.after(status, action)
    else:
        assert outcome == (refusal if refusal is not None else False)
        assert after == status


@pytest.mark.parametrize(("status", "action"), list(product(ImageStatus, ImageAction)))
async def test_an_image_action_succeeds_exactly_where_the_table_allows_it(
    sessionmaker: async_sessionmaker[AsyncSession], status: ImageStatus, action: ImageAction
) -> None:
    """Admitting is processing the approved image-level request; refusing is rejecting it."""
    admit = action is ImageAction.ADMIT
    request_status = RequestStatus.APPROVED if admit else RequestStatus.PENDING
    _, request_id = await _seed(
        sessionmaker, image_status=status, request_status=request_status, tag=None
    )
    outcome: bool | str
    try:
        async with sessionmaker() as session, session.begin():
            outcome = await (_process if admit else _reject)(session, request_id)
    except Conflict as exc:
        outcome = str(exc.code)
    request_after, image_after = await _status_of(sessionmaker, request_id)
    if image_states.allows(status, action):
        assert outcome is True
        assert image_after == image_states.after(status, action)
    else:
        assert outcome == IMAGE_REFUSAL
        assert (request_after, image_after) == (request_status, status)


@pytest.mark.parametrize("column", [ApprovalRequest.status, Image.approval_status])
async def test_the_database_refuses_a_status_outside_the_machine(
    sessionmaker: async_sessionmaker[AsyncSession], column: InstrumentedAttribute[str]
) -> None:
    _, request_id = await _seed(
        sessionmaker,
        image_status=ImageStatus.APPROVED,
        request_status=RequestStatus.PENDING,
        tag="7.2.5",
    )
    with pytest.raises(IntegrityError):
        async with sessionmaker() as session, session.begin():
            await session.execute(update(column.class_).values({column.key: "superseded"}))
    assert await _status_of(sessionmaker, request_id) == (
        RequestStatus.PENDING,
        ImageStatus.APPROVED,
    )
