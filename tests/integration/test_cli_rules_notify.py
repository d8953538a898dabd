"""`tagwarden rules` and `tagwarden notify` against both databases (and a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tagwarden.audit.models import AuditEntry
from tagwarden.catalogue.models import Image
from tagwarden.cli.main import app
from tagwarden.db import make_engine, make_sessionmaker

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def run_sql(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture
def image_id(cli_env: str) -> int:
    async def add(session: Any) -> int:
        image = Image(image_name="redis", approval_status="approved")
        session.add(image)
        await session.flush()
        return image.id

    return int(run_sql(cli_env, add))


def test_rules_are_added_listed_and_removed_with_an_audit_trail(
    cli_env: str, image_id: int
) -> None:
    added = invoke(
        "rules", "add", str(image_id), "--name", "patches", "--kind", "patch",
        "--min-age-hours", "24",
    )  # fmt: skip
    rule_id = re.search(r"Added rule (\d+) \(patches: patch", added)
    assert rule_id is not None
    invoke("rules", "add", str(image_id), "--name", "sevens", "--kind", "range",
           "--pattern", ">=7.2,<8")  # fmt: skip

    listed = invoke("rules", "list", str(image_id))
    assert re.search(r"patches\s.*patch\s.*-\s.*24 h\s.*yes\s.*cli:", listed)
    assert re.search(r"sevens\s.*range\s.*>=7\.2, <8\s.*0 h", listed)  # as normalised

    # Bad input is refused with the reason, and nothing is added.
    assert "needs a pattern" in invoke(
        "rules", "add", str(image_id), "--name", "x", "--kind", "regex", code=1
    )
    assert "already has a rule named 'patches'" in invoke(
        "rules", "add", str(image_id), "--name", "patches", "--kind", "minor", code=1
    )
    assert "not found" in invoke("rules", "list", "999", code=1)

    invoke("rules", "remove", str(image_id), rule_id.group(1))
    listed = invoke("rules", "list", str(image_id))
    assert "patches" not in listed
    assert "sevens" in listed
    assert "not found" in invoke("rules", "remove", str(image_id), rule_id.group(1), code=1)

    async def actions(session: Any) -> list[str]:
        rows = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == "approval_rule")
            .order_by(AuditEntry.id)
        )
        return list(rows.all())

    assert run_sql(cli_env, actions) == [
        "approval_rule.created",
        "approval_rule.created",
        "approval_rule.deleted",
    ]


def test_the_policy_command_shows_and_sets_four_eyes(cli_env: str, image_id: int) -> None:
    assert "required approvals: 1" in invoke("rules", "policy", str(image_id))
    assert "required approvals: 2" in invoke(
        "rules", "policy", str(image_id), "--required-approvals", "2"
    )
    assert "required approvals: 2" in invoke("rules", "policy", str(image_id))
    invoke("rules", "policy", str(image_id), "--required-approvals", "0", code=2)


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.received.append((dict(self.headers), body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_notify_channels_are_added_listed_tested_and_removed(
    cli_env: str, receiver: Receiver
) -> None:
    added = invoke(
        "notify", "add", "--name", "ops-hook", "--kind", "webhook", "--url", receiver.url,
        "--event", "approval.requested", "--event", "monitor.error",
    )  # fmt: skip
    channel_id = re.search(r"Added webhook channel (\d+) \(ops-hook\)", added)
    assert channel_id is not None
    secret = added.strip().splitlines()[-1]
    assert len(secret) >= 16

    listed = invoke("notify", "list")
    assert re.search(r"ops-hook\s.*webhook\s.*approval\.requested, monitor\.error", listed)
    assert secret not in listed  # the secret is shown once, at creation
    assert receiver.url not in listed  # and the URL only as its host

    delivered = invoke("notify", "test", channel_id.group(1))
    assert f"Test message delivered to channel {channel_id.group(1)}" in delivered
    [(headers, body)] = receiver.received
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Tagwarden-Signature"].endswith(expected)

    receiver.status = 500
    failed = invoke("notify", "test", channel_id.group(1), code=1)
    assert "not delivered" in failed

    assert "kind must be one of" in invoke(
        "notify", "add", "--name", "x", "--kind", "pigeon", "--url", receiver.url, code=1
    )
    invoke("notify", "remove", channel_id.group(1))
    assert "ops-hook" not in invoke("notify", "list")
    assert "not found" in invoke("notify", "test", channel_id.group(1), code=1)
