"""Notification use cases: ``emit`` (the outbox write), and channel management."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tagwarden.audit import service as audit
from tagwarden.db import flush_unique
from tagwarden.errors import Conflict, InvalidInput, NotFound
from tagwarden.notify.models import (
    CHANNEL_KINDS,
    EVENTS,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from tagwarden.notify.states import DeliveryStatus
from tagwarden.redact import redact_url

ALL_EVENTS = "*"
SECRET_KEYS = ("url", "secret")  # config values never shown back in full


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    return value


def subscribes(channel_events: Sequence[str], event: str) -> bool:
    return ALL_EVENTS in channel_events or event in channel_events


async def emit(
    session: AsyncSession, event: str, payload: Mapping[str, Any]
) -> NotificationEvent | None:
    """Write ``event`` to the outbox, in the caller's transaction, for every subscribed channel.

    Nothing is sent here: the event exists exactly when the change that caused it is committed,
    and the outbox worker delivers it after. With no subscriber nothing is written, so a
    deployment without channels pays one small SELECT per event.
    """
    return (await emit_many(session, [(event, payload)]))[0]


async def emit_many(
    session: AsyncSession, events: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[NotificationEvent | None]:
    """``emit`` for several events at once (a monitor scan's batch): one SELECT of the
    channels and one flush, however many events. The outbox rows, in ``events``' order, with
    None for an event no channel subscribes to."""
    for event, _ in events:
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}")
    if not events:
        return []
    channels = (
        await session.execute(
            select(NotificationChannel.id, NotificationChannel.events).where(
                NotificationChannel.enabled.is_(True)
            )
        )
    ).all()
    rows: list[NotificationEvent | None] = []
    fanout: list[tuple[NotificationEvent, list[int]]] = []
    for event, payload in events:
        targets = [cid for cid, subscribed in channels if subscribes(subscribed or [], event)]
        if not targets:
            rows.append(None)
            continue
        row = NotificationEvent(key=str(uuid.uuid4()), event=event, payload=_json_safe(payload))
        session.add(row)
        rows.append(row)
        fanout.append((row, targets))
    if not fanout:
        return rows
    await session.flush()
    session.add_all(
        NotificationDelivery(
            event_id=row.id,
            channel_id=cid,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=row.created_at,
        )
        for row, targets in fanout
        for cid in targets
    )
    return rows


# -- channels ----------------------------------------------------------------------------------


def check_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The channel's config, checked for its kind; a webhook without a secret gets one."""
    if kind not in CHANNEL_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(CHANNEL_KINDS)}")
    checked: dict[str, Any] = {}
    if kind in ("slack", "discord", "webhook"):
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidInput(f"a {kind} channel needs config.url, an http(s) URL")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise InvalidInput(f"config.url is not a valid URL: {exc}") from exc
        if not parsed.host:
            raise InvalidInput("config.url has no host")
        checked["url"] = url
    if kind == "webhook":
        secret = config.get("secret") or secrets.token_urlsafe(32)
        if not isinstance(secret, str) or len(secret) < 16:
            raise InvalidInput("config.secret must be at least 16 characters")
        checked["secret"] = secret
    if kind == "email":
        to = config.get("to")
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, list)
            or not to
            or not all(
                isinstance(a, str)
                and "@" in a
                and len(a) <= 254
                # A CR or LF would inject headers (Bcc: …) into the message.
                and not any(c in a for c in "\r\n,;")
                for a in to
            )
        ):
            raise InvalidInput("an email channel needs config.to, a list of email addresses")
        checked["to"] = to
    unknown = set(config) - {"url", "secret", "to"}
    if unknown:
        raise InvalidInput(
            f"unknown config keys for a {kind} channel: {', '.join(sorted(unknown))}"
        )
    return checked


def check_events(events: Sequence[str]) -> list[str]:
    if not events:
        raise InvalidInput(f"events must name at least one event, or {ALL_EVENTS!r} for all")
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENTS]
    if unknown:
        raise InvalidInput(
            f"unknown events: {', '.join(unknown)}; known: {', '.join(EVENTS)} (or {ALL_EVENTS!r})"
        )
    return list(dict.fromkeys(events))


async def create_channel(
    session: AsyncSession,
    *,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    events: Sequence[str],
    actor: str,
) -> NotificationChannel:
    name = name.strip()
    if not name:
        raise InvalidInput("name must not be empty")
    checked = check_config(kind, config)
    wanted = check_events(events)
    channel = NotificationChannel(
        name=name, kind=kind, config=checked, events=wanted, enabled=True, created_by=actor
    )
    session.add(channel)
    await flush_unique(
        session, Conflict(f"a notification channel named {name!r} exists", code="channel_exists")
    )
    audit.record(
        session,
        actor=actor,
        action="notification_channel.created",
        entity_type="notification_channel",
        entity_id=channel.id,
        after={"name": name, "kind": kind, "events": wanted, "config": redacted(checked)},
    )
    return channel


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """URLs of chat webhooks are credentials: show the scheme, user and host, never the path,
    the query or a password (``https://user:***@host/…``). What is stored keeps them all."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in SECRET_KEYS and isinstance(value, str):
            out[key] = redact_url(value, keep_path=False) if key == "url" else "…" + value[-4:]
        else:
            out[key] = value
    return out


async def get_channel(session: AsyncSession, channel_id: int) -> NotificationChannel:
    channel = await session.get(NotificationChannel, channel_id)
    if channel is None:
        raise NotFound(f"notification channel {channel_id} not found")
    return channel


async def list_channels(session: AsyncSession) -> Sequence[NotificationChannel]:
    return (
        await session.scalars(select(NotificationChannel).order_by(NotificationChannel.id))
    ).all()


async def delete_channel(
    session: AsyncSession, channel_id: int, *, actor: str
) -> NotificationChannel:
    channel = await get_channel(session, channel_id)
    await session.delete(channel)
    audit.record(
        session,
        actor=actor,
        action="notification_channel.deleted",
        entity_type="notification_channel",
        entity_id=channel.id,
        before={"name": channel.name, "kind": channel.kind, "events": channel.events},
    )
    return channel


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(NotificationDelivery.status, func.count()).group_by(NotificationDelivery.status)
    )
    counts = {str(status): 0 for status in DeliveryStatus}
    counts.update({status: int(n) for status, n in rows.all()})
    return counts


async def recent_failures(session: AsyncSession, limit: int = 20) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(NotificationDelivery, NotificationEvent.event, NotificationEvent.key)
        .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
        .where(NotificationDelivery.last_error.is_not(None))
        .order_by(NotificationDelivery.id.desc())
        .limit(limit)
    )
    return [
        {
            "delivery_id": d.id,
            "channel_id": d.channel_id,
            "event": event,
            "idempotency_key": key,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat(),
            "last_error": d.last_error,
        }
        for d, event, key in rows.all()
    ]
