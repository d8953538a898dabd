"""A notification receiver's words never become tagwarden's error, on both
databases: ``last_error`` and the channel test say the status in tagwarden's words, in the API
and in the CLI alike, never the receiver's body, reason phrase or anything else it sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tagwarden.cli.main import app as cli
from tagwarden.config import Settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.notify import senders, service
from tagwarden.notify.models import NotificationDelivery
from tagwarden.notify.worker import OutboxWorker
from tests.factories import make_settings

MARKER = "internal-secret-7f3a"  # what an internal service behind the receiver would reveal
STANDARD = "500 Internal Server Error"


class Answers500(BaseHTTPRequestHandler):
    """Every request gets a 500 with its own reason phrase and a body that gives things away."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"<h1>oops</h1><pre>db password: {MARKER}</pre>".encode()
        self.send_response(500, f"Broken {MARKER}")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log in tests
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def _channel_with_a_failed_delivery(settings: Settings, url: str) -> tuple[int, str | None]:
    """A webhook channel to ``url``, one event, one delivery attempt; (channel, last_error)."""
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            channel = await service.create_channel(
                session, name="ops", kind="webhook", config={"url": url}, events=["*"], actor="t"
            )
            await service.emit(session, "monitor.error", {"image": "redis", "error": "boom"})
        outbox = OutboxWorker(settings, sessionmaker, httpx.AsyncClient())
        try:
            assert await outbox.run_once() == 1
        finally:
            await outbox.aclose()
        async with sessionmaker() as session:
            error = await session.scalar(select(NotificationDelivery.last_error))
        return channel.id, error
    finally:
        await engine.dispose()


def _says_the_status_and_nothing_of_the_receiver(text: str | None) -> None:
    assert text is not None
    assert STANDARD in text, text
    assert MARKER not in text, text
    assert "oops" not in text, text


async def test_the_outbox_and_the_channel_test_in_the_api_never_show_the_receivers_answer(
    settings: Settings, client: httpx.AsyncClient, tokens: Any, receiver: str
) -> None:
    channel_id, stored = await _channel_with_a_failed_delivery(settings, receiver)
    _says_the_status_and_nothing_of_the_receiver(stored)
    assert stored == f"HTTP {STANDARD}"

    admin = tokens.headers("admin")
    outbox = await client.get("/api/v1/notifications/outbox", headers=admin)
    assert outbox.status_code == 200, outbox.text
    [failure] = outbox.json()["recent_failures"]
    _says_the_status_and_nothing_of_the_receiver(failure["last_error"])
    assert MARKER not in outbox.text

    tested = await client.post(f"/api/v1/notifications/channels/{channel_id}/test", headers=admin)
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is False
    _says_the_status_and_nothing_of_the_receiver(tested.json()["detail"])


def test_the_cli_outbox_and_channel_test_never_show_the_receivers_answer(
    settings: Settings, cli_env: str, receiver: str
) -> None:
    channel_id, _ = asyncio.run(_channel_with_a_failed_delivery(settings, receiver))
    runner = CliRunner()

    outbox = runner.invoke(cli, ["notify", "outbox"])
    assert outbox.exit_code == 0, outbox.output
    assert "failed: 0" in outbox.output  # pending: retried later
    _says_the_status_and_nothing_of_the_receiver(outbox.output)

    tested = runner.invoke(cli, ["notify", "test", str(channel_id)])
    assert tested.exit_code == 1
    _says_the_status_and_nothing_of_the_receiver(tested.output)


class RefusingSmtp:
    """An SMTP server on loopback that refuses the step it is told to, in words of its own."""

    def __init__(self, refuse: bytes) -> None:
        self.refuse = refuse
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == self.refuse:
                writer.write(f"550 5.7.1 {MARKER} says no\r\n".encode())
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (b"MAIL", "SMTP: the server refused the sender (550)"),
        (b"RCPT", "SMTP: the server refused every recipient (550)"),
    ],
)
async def test_an_smtp_refusal_is_told_by_its_code_not_the_servers_words(
    step: bytes, expected: str
) -> None:
    smtp = RefusingSmtp(step)
    port = await smtp.start()
    settings = make_settings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_from="tagwarden@example.com"
    )
    try:
        async with httpx.AsyncClient() as http:
            error = await senders.send_test(
                "email",
                {"to": ["ops@example.com"]},
                channel_name="mail",
                requested_by="t",
                http=http,
                settings=settings,
            )
    finally:
        await smtp.stop()
    assert error == expected
    assert MARKER not in error


async def test_a_receiver_that_breaks_http_is_not_quoted() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 200 OK\r\nX-{MARKER} broken header\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as http:
            error = await senders.send_test(
                "slack",
                {"url": f"http://127.0.0.1:{port}/hook"},
                channel_name="chat",
                requested_by="t",
                http=http,
                settings=make_settings(),
            )
    finally:
        server.close()
        await server.wait_closed()
    assert error is not None
    assert MARKER not in error
    assert error == "the server broke the HTTP protocol (RemoteProtocolError)"
