"""Secrets stay out of logs and views, on both databases.

The access log is the one a real ``tagwarden serve`` writes; the channel's password is checked
in every view of it (audit, channel API, CLI) and at the loopback receiver that must still get it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tagwarden.cli.main import app as cli
from tagwarden.redact import RedactingFilter, redact_text, redact_url

SECRET = "hub-secret-0123456789abcdef"
STRANGER = "someone-elses-secret-0123456789"
PASSWORD = "hookpass-s3cret"
QUERY_TOKEN = "tok-s3cret-value"


def test_redaction_keeps_what_recognises_and_masks_the_secret() -> None:
    assert (
        redact_text(f'"POST /api/v1/webhooks/dockerhub/{SECRET}?x=1 HTTP/1.1" 202')
        == '"POST /api/v1/webhooks/dockerhub/***?x=1 HTTP/1.1" 202'
    )
    assert redact_url(f"https://bob:{PASSWORD}@hooks.example/a/b?token={QUERY_TOKEN}&x=1") == (
        "https://bob:***@hooks.example/a/b?token=***&x=1"
    )
    assert redact_url(f"https://bob:{PASSWORD}@hooks.example/a", keep_path=False) == (
        "https://bob:***@hooks.example/…"
    )
    assert redact_url("https://ghp_token@host/x") == "https://***@host/x"
    assert redact_text("Checking redis at https://hub.docker.com/v2/x/") == (
        "Checking redis at https://hub.docker.com/v2/x/"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_access_log_of_a_real_server_never_shows_a_webhook_secret(
    database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = os.environ | {
        "TAGWARDEN_DATABASE_URL": database_url,
        "TAGWARDEN_WEBHOOK_SECRET": SECRET,
        "TAGWARDEN_SECRET_KEY": "test-secret-key-0123456789",
        "TAGWARDEN_MONITOR_ENABLED": "false",
        "TAGWARDEN_ROLLOUT_WORKER_ENABLED": "false",
        "TAGWARDEN_OUTBOX_WORKER_ENABLED": "false",
        "TAGWARDEN_RULES_WORKER_ENABLED": "false",
        "TAGWARDEN_LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "server.log"
    tagwarden = Path(sys.executable).with_name("tagwarden")
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(tagwarden), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=10) as client:
                for _ in range(300):
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert server.poll() is None, log_path.read_text()
                    time.sleep(0.1)
                payload = {"push_data": {"tag": "1.0"}, "repository": {"repo_name": "a/b"}}
                ok = client.post(f"/api/v1/webhooks/dockerhub/{SECRET}", json=payload)
                assert ok.status_code == 202, ok.text
                refused = client.post(f"/api/v1/webhooks/dockerhub/{STRANGER}", json=payload)
                assert refused.status_code == 401
                queried = client.get(f"/api/v1/images?token={QUERY_TOKEN}")
                assert queried.status_code == 401
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    written = log_path.read_text()
    assert "/api/v1/webhooks/dockerhub/*** HTTP/1.1" in written, written  # the line is there
    for secret in (SECRET, STRANGER, QUERY_TOKEN):
        assert secret not in written, written


class Receiver(ThreadingHTTPServer):
    """A loopback webhook receiver that remembers each request's path and Authorization."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.seen.append((self.path, self.headers.get("authorization")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_a_channel_password_is_shown_nowhere_and_still_used_for_delivery(
    client: httpx.AsyncClient, tokens: Any, receiver: Receiver, cli_env: str
) -> None:
    port = receiver.server_address[1]
    url = f"http://hookuser:{PASSWORD}@127.0.0.1:{port}/hook?token={QUERY_TOKEN}"
    created = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "ops", "kind": "slack", "config": {"url": url}, "events": ["*"]},
        headers=tokens.headers("admin"),
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    shown_url = f"http://hookuser:***@127.0.0.1:{port}/…"
    assert created.json()["config"]["url"] == shown_url

    views = {
        "audit": await client.get("/api/v1/audit", headers=tokens.headers("viewer")),
        "list": await client.get("/api/v1/notifications/channels", headers=tokens.headers("admin")),
        "get": await client.get(
            f"/api/v1/notifications/channels/{channel_id}", headers=tokens.headers("admin")
        ),
    }
    for name, view in views.items():
        assert view.status_code == 200, (name, view.text)
        assert PASSWORD not in view.text, name
        assert QUERY_TOKEN not in view.text, name
    assert "hookuser:***@127.0.0.1" in views["audit"].text  # recognisable, not hidden
    assert views["get"].json()["config"]["url"] == shown_url

    # The CLI runs its own event loop: in a thread, beside this test's.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["notify", "list"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "hookuser:***@127.0.0.1" in result.output
    assert PASSWORD not in result.output
    assert QUERY_TOKEN not in result.output

    # Delivery uses the stored URL, password and token included.
    sent = await client.post(
        f"/api/v1/notifications/channels/{channel_id}/test", headers=tokens.headers("admin")
    )
    assert sent.json()["ok"] is True, sent.text
    expected = "Basic " + base64.b64encode(f"hookuser:{PASSWORD}".encode()).decode()
    assert receiver.seen == [(f"/hook?token={QUERY_TOKEN}", expected)]


def test_the_filter_keeps_uvicorns_access_record_shape() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", f"/api/v1/webhooks/dockerhub/{SECRET}", "1.1", 202),
        None,
    )
    assert RedactingFilter().filter(record)
    assert record.args == ("127.0.0.1:5", "POST", "/api/v1/webhooks/dockerhub/***", "1.1", 202)
