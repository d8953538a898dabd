"""Notifications: channels, the transactional outbox and its delivery worker, on both databases."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from email.message import Message as MailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals import activation
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.config import Settings
from tagwarden.errors import InvalidInput
from tagwarden.notify import service
from tagwarden.notify.models import NotificationDelivery, NotificationEvent
from tagwarden.notify.worker import OutboxWorker
from tagwarden.testing.clock import OffsetClock
from tests.factories import add_redis, seed_request

RECEIVER = "http://receiver.test/hook"  # only ever answered by an in-process MockTransport
# Sent to for real by the server's own client: a loopback port nothing listens on, so no name is
# looked up and nothing leaves the machine.
UNREACHABLE = "http://127.0.0.1:9/hook"


def worker(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    handler: Callable[[httpx.Request], Any],
    clock: OffsetClock,
    **overrides: Any,
) -> OutboxWorker:
    configured = settings.model_copy(update={"outbox_backoff_seconds": 10.0, **overrides})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OutboxWorker(configured, sessionmaker, http, clock=clock)


async def add_channel(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: str,
    config: dict[str, Any],
    events: list[str],
) -> int:
    async with sessionmaker() as session, session.begin():
        channel = await service.create_channel(
            session, name=f"{kind}-channel", kind=kind, config=config, events=events, actor="t"
        )
    return channel.id


async def emit_one(
    sessionmaker: async_sessionmaker[AsyncSession], event: str = "monitor.error"
) -> str:
    async with sessionmaker() as session, session.begin():
        row = await service.emit(session, event, {"image": "redis", "error": "boom"})
    assert row is not None
    return row.key


async def test_a_receiver_that_fails_twice_then_succeeds_gets_the_event_once_per_success(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    secret = "receiver-secret-0123456789"
    await add_channel(sessionmaker, "webhook", {"url": RECEIVER, "secret": secret}, ["*"])
    key = await emit_one(sessionmaker)
    seen: list[httpx.Request] = []
    accepted: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= 2:
            return httpx.Response(503, text="down for maintenance")
        accepted.append(request.headers["X-Tagwarden-Idempotency-Key"])
        return httpx.Response(204)

    clock = OffsetClock()
    outbox = worker(settings, sessionmaker, receiver, clock)
    assert await outbox.run_once() == 1  # attempt 1: 503
    assert await outbox.run_once() == 0  # backing off
    clock.advance(10)
    assert await outbox.run_once() == 1  # attempt 2: 503
    clock.advance(10)
    assert await outbox.run_once() == 0  # the second backoff is longer (≥ 16 s)
    clock.advance(10)
    assert await outbox.run_once() == 1  # attempt 3: taken
    clock.advance(3600)
    assert await outbox.run_once() == 0  # never again
    await outbox.aclose()

    assert accepted == [key]
    assert {r.headers["X-Tagwarden-Idempotency-Key"] for r in seen} == {key}
    body = seen[-1].content
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert seen[-1].headers["X-Tagwarden-Signature"] == expected
    assert json.loads(body)["event"] == "monitor.error"
    async with sessionmaker() as session:
        [delivery] = (await session.scalars(select(NotificationDelivery))).all()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


async def test_a_restart_in_mid_delivery_loses_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_channel(sessionmaker, "slack", {"url": RECEIVER}, ["monitor.error"])
    key = await emit_one(sessionmaker)
    started = asyncio.Event()

    async def hangs(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    clock = OffsetClock()
    first = worker(settings, sessionmaker, hangs, clock)
    tick = asyncio.create_task(first.run_once())
    await asyncio.wait_for(started.wait(), timeout=10)
    tick.cancel()  # the server goes down while the receiver is still answering
    with pytest.raises(asyncio.CancelledError):
        await tick
    await first.aclose()

    delivered: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        delivered.append(request.headers["X-Tagwarden-Idempotency-Key"])
        assert json.loads(request.content)["text"].startswith("[tagwarden] monitor.error")
        return httpx.Response(200, text="ok")

    second = worker(settings, sessionmaker, receiver, clock)  # a fresh process
    assert await second.run_once() == 0  # the first one's lease still holds
    clock.advance(settings.outbox_lease_seconds + 1)
    assert await second.run_once() == 1
    await second.aclose()
    assert delivered == [key]


async def test_events_are_written_in_the_same_transaction_as_the_change(
    app: Any,
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_channel(
        sessionmaker, "discord", {"url": RECEIVER}, ["approval.approved", "tag.activated"]
    )
    image = await add_redis(client, tokens.headers("admin"))
    request_id = await seed_request(sessionmaker, image["id"])
    url = f"/api/v1/images/approvals/{request_id}"
    await client.post(f"{url}/approve", headers=tokens.headers("approver"))
    refused = await client.post(f"{url}/approve", headers=tokens.headers("admin"))
    assert refused.status_code == 409  # rolled back: it leaves no event behind
    async with sessionmaker() as session:
        events = (
            await session.scalars(select(NotificationEvent).order_by(NotificationEvent.id))
        ).all()
    assert [e.event for e in events] == ["approval.approved", "tag.activated"]
    assert events[0].payload["reviewed_by"] == "approver@example.com"
    assert events[1].payload["tag"] == "7.2.5-alpine"

    # A failure after the event was written (activation, here) takes the event down with it.
    later = await seed_request(sessionmaker, image["id"], request_id=124, tag="7.4.0")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("activation failed")

    monkeypatch.setattr(activation, "process", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tagwarden.test") as c:
        failed = await c.post(
            f"/api/v1/images/approvals/{later}/approve", headers=tokens.headers("approver")
        )
    assert failed.status_code == 500
    async with sessionmaker() as session:
        after = (await session.scalars(select(NotificationEvent.event))).all()
        status = await session.scalar(
            select(ApprovalRequest.status).where(ApprovalRequest.id == later)
        )
    assert sorted(after) == ["approval.approved", "tag.activated"]
    assert status == "pending"


async def test_channels_are_managed_by_admins_and_secrets_are_shown_once(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    created = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "ops", "kind": "webhook", "config": {"url": UNREACHABLE}, "events": ["*"]},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert len(secret) >= 32
    listed = await client.get("/api/v1/notifications/channels", headers=tokens.headers("admin"))
    assert secret not in listed.text
    assert "127.0.0.1:9/hook" not in listed.text  # a chat URL is a credential
    assert listed.json()[0]["config"]["url"] == "http://127.0.0.1:9/…"
    forbidden = await client.get(
        "/api/v1/notifications/channels", headers=tokens.headers("approver")
    )
    assert forbidden.status_code == 403
    bad = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "x", "kind": "email", "config": {"to": ["nobody"]}, "events": ["nope"]},
        headers=tokens.headers("admin"),
    )
    assert bad.status_code == 422
    test = await client.post(
        f"/api/v1/notifications/channels/{created.json()['id']}/test",
        headers=tokens.headers("admin"),
    )
    assert test.json()["ok"] is False  # nothing listens at 127.0.0.1:9
    removed = await client.delete(
        f"/api/v1/notifications/channels/{created.json()['id']}", headers=tokens.headers("admin")
    )
    assert removed.status_code == 200
    outbox = await client.get("/api/v1/notifications/outbox", headers=tokens.headers("admin"))
    assert outbox.json() == {"pending": 0, "delivered": 0, "failed": 0, "recent_failures": []}


class SmtpSink:
    """A tiny SMTP server on loopback: enough of RFC 5321 for smtplib's send_message."""

    def __init__(self) -> None:
        self.messages: list[MailMessage] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                self.messages.append(email.message_from_bytes(data[:-5]))
                writer.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = await sink.start()
    yield sink, port
    assert sink.server is not None
    sink.server.close()
    await sink.server.wait_closed()


async def test_an_email_channel_delivers_to_an_smtp_server(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp_sink: tuple[SmtpSink, int],
) -> None:
    sink, port = smtp_sink
    await add_channel(sessionmaker, "email", {"to": ["ops@example.com"]}, ["monitor.error"])
    key = await emit_one(sessionmaker)
    outbox = worker(
        settings,
        sessionmaker,
        lambda r: httpx.Response(500),
        OffsetClock(),
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="tagwarden@example.com",
    )
    assert await outbox.run_once() == 1
    await outbox.aclose()
    [mail] = sink.messages
    assert mail["To"] == "ops@example.com"
    assert mail["X-Tagwarden-Idempotency-Key"] == key
    assert mail["Subject"].startswith("[tagwarden] monitor.error")
    assert json.loads(mail.get_payload())["payload"]["error"] == "boom"  # type: ignore[arg-type]
    async with sessionmaker() as session:
        [delivery] = (await session.scalars(select(NotificationDelivery))).all()
    assert delivery.status == "delivered"


async def test_a_delivery_that_keeps_failing_ends_as_failed_with_its_error(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_channel(sessionmaker, "slack", {"url": RECEIVER}, ["*"])
    await emit_one(sessionmaker)
    clock = OffsetClock()
    outbox = worker(
        settings,
        sessionmaker,
        lambda r: httpx.Response(500, text="no"),
        clock,
        outbox_max_attempts=2,
    )
    await outbox.run_once()
    clock.advance(60)
    await outbox.run_once()
    await outbox.aclose()
    async with sessionmaker() as session:
        counts = await service.outbox_counts(session)
        [failure] = await service.recent_failures(session)
    assert counts == {"pending": 0, "delivered": 0, "failed": 1}
    assert failure["last_error"] == "HTTP 500 Internal Server Error"


async def test_a_channel_that_breaks_its_sender_fails_alone_and_the_batch_is_recorded(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Found in review: an exception other than a delivery failure escaped the batch, so no
    outcome was recorded and every event was resent on every tick."""
    good = await add_channel(sessionmaker, "webhook", {"url": RECEIVER}, ["monitor.error"])
    async with sessionmaker() as session, session.begin():
        broken = await service.create_channel(
            session,
            name="broken",
            kind="webhook",
            config={"url": "http://broken.test/hook"},
            events=["monitor.error"],
            actor="t",
        )
    bad = broken.id
    await emit_one(sessionmaker)
    received: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "broken.test":
            raise ValueError("a sender library choked on this channel")
        received.append(request.headers["X-Tagwarden-Idempotency-Key"])
        return httpx.Response(200)

    outbox = worker(settings, sessionmaker, handler, OffsetClock())
    assert await outbox.run_once() == 2
    assert await outbox.run_once() == 0  # nothing due again: both outcomes were recorded

    async with sessionmaker() as session:
        rows = {
            d.channel_id: d for d in (await session.scalars(select(NotificationDelivery))).all()
        }
    assert rows[good].status == "delivered"
    assert rows[bad].status == "pending"
    assert "ValueError" in (rows[bad].last_error or "")
    assert len(received) == 1


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("webhook", {"url": "http://[::1"}),
        ("slack", {"url": "https://"}),
        ("email", {"to": ["a@b.example\r\nBcc: c@d.example"]}),
    ],
)
async def test_channels_that_could_never_deliver_are_refused(
    sessionmaker: async_sessionmaker[AsyncSession], kind: str, config: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        await add_channel(sessionmaker, kind, config, ["monitor.error"])


async def test_concurrent_creates_of_one_channel_name_make_one_channel_and_409s(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    body = {"name": "ops", "kind": "webhook", "config": {"url": RECEIVER}, "events": ["*"]}
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/notifications/channels", json=body, headers=tokens.headers("admin")
            )
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"channel_exists"}
    listed = await client.get("/api/v1/notifications/channels", headers=tokens.headers("admin"))
    assert [c["name"] for c in listed.json()] == ["ops"]
