"""Notification channel routes (admins): add, list, remove, test; and the outbox's state."""

from __future__ import annotations

from fastapi import APIRouter, status

from tagwarden.auth.deps import Admin, Session
from tagwarden.errors import error_responses
from tagwarden.inputs import IdPath
from tagwarden.notify import service
from tagwarden.notify.deps import Outbox
from tagwarden.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    ChannelTestOut,
    OutboxOut,
)
from tagwarden.notify.senders import send_test

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("/channels")
async def list_channels(session: Session, _: Admin) -> list[ChannelOut]:
    return [ChannelOut.of(c) for c in await service.list_channels(session)]


@router.post("/channels", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def create_channel(body: ChannelCreate, session: Session, who: Admin) -> ChannelCreated:
    channel = await service.create_channel(
        session,
        name=body.name,
        kind=body.kind,
        config=body.config_dict(),
        events=body.events,
        actor=who.identity,
    )
    secret = channel.config.get("secret") if channel.kind == "webhook" else None
    return ChannelCreated(**ChannelOut.of(channel).model_dump(), secret=secret)


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: IdPath, session: Session, _: Admin) -> ChannelOut:
    return ChannelOut.of(await service.get_channel(session, channel_id))


@router.delete("/channels/{channel_id}")
async def delete_channel(channel_id: IdPath, session: Session, who: Admin) -> ChannelOut:
    return ChannelOut.of(await service.delete_channel(session, channel_id, actor=who.identity))


@router.post("/channels/{channel_id}/test")
async def test_channel(
    channel_id: IdPath, outbox: Outbox, session: Session, who: Admin
) -> ChannelTestOut:
    """Send a test message now, outside the outbox, and say whether the receiver took it."""
    channel = await service.get_channel(session, channel_id)
    error = await send_test(
        channel.kind,
        channel.config,
        channel_name=channel.name,
        requested_by=who.identity,
        http=outbox.http,
        settings=outbox.settings,
    )
    if error:
        return ChannelTestOut(ok=False, detail=error)
    return ChannelTestOut(ok=True, detail=f"test message sent to {channel.name}")


@router.get("/outbox")
async def outbox_state(session: Session, _: Admin) -> OutboxOut:
    return OutboxOut(
        **await service.outbox_counts(session),
        recent_failures=await service.recent_failures(session),
    )
