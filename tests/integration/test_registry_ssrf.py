"""On both databases: the registry allow-list, every
redirect hop checked, no remote text where people read errors, credentials only to their host,
and tag names outside the grammar never entering.

The hostile registries are small HTTP servers of the test's own on 127.0.0.1: one configured
registry that misbehaves, and a second server that stands for an internal service, which records
what it gets (it must get nothing).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.cli.main import app as cli
from tagwarden.config import RegistryCredentials, Settings
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.registry.auth import basic_header
from tagwarden.registry.transport import RegistryState
from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_registry import FakeRegistry
from tests.factories import add_image, make_settings
from tests.integration.test_web import login

SETTING = "TAGWARDEN_ALLOWED_REGISTRIES"
# What the internal service answers: it must never reach last_error, the API or the status.
SECRET = "TOP-SECRET-INTERNAL-BODY-7f3a"
HOSTILE = [
    "<script>alert(1)</script>",
    "a" * 300,
    "bad\nname",
    "../../",
    "7.2.6\n",  # passes a match against ^…$, which is why the check is a fullmatch
]


# -- loopback servers ----------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Loopback:
    """An HTTP server on 127.0.0.1 that answers with ``reply`` and records every request."""

    reply: Callable[[BaseHTTPRequestHandler], Reply]
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextmanager
def loopback(reply: Callable[[BaseHTTPRequestHandler], Reply]) -> Iterator[Loopback]:
    server_state = Loopback(reply)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server_state.seen.append(
                Seen(self.command, self.path, self.headers.get("Authorization"))
            )
            status, headers, body = server_state.reply(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _answer  # noqa: N815 (http.server's names)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def internal_service(_: BaseHTTPRequestHandler) -> Reply:
    return 200, {"Content-Type": "text/plain"}, SECRET.encode()


@pytest.fixture
def internal() -> Iterator[Loopback]:
    with loopback(internal_service) as server:
        yield server


# -- the app ---------------------------------------------------------------------------------


@dataclass
class App:
    app: FastAPI
    client: httpx.AsyncClient
    admin: dict[str, str]
    approver: dict[str, str]
    sessionmaker: async_sessionmaker[AsyncSession]

    async def add_image(self, registry: str, **extra: Any) -> int:
        body = {"image_name": "app", "namespace": "acme", "registry": registry, **extra}
        response = await self.client.post("/api/v1/images", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def check(self, image_id: int) -> dict[str, Any]:
        response = await self.client.post(f"/api/v1/images/{image_id}/check", headers=self.approver)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    async def image(self, image_id: int) -> Image:
        async with self.sessionmaker() as session:
            image = await session.get(Image, image_id)
            assert image is not None
            return image


@asynccontextmanager
async def running(
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> AsyncIterator[App]:
    configured = make_settings(
        settings.database_url,
        registry_max_retries=0,
        registry_timeout_seconds=5.0,
        **overrides,
    )
    app = create_app(configured, registry_transport=transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tw") as client,
    ):
        yield App(app, client, tokens.headers("admin"), tokens.headers("approver"), sessionmaker)


def registry(server: Loopback, **credentials: Any) -> dict[str, RegistryCredentials]:
    return {server.host: RegistryCredentials(url=server.url, **credentials)}


# -- the allow-list --------------------------------------------------------------------------


async def test_an_image_on_a_host_not_allowed_is_refused_naming_the_setting(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with running(settings, tokens, sessionmaker, allowed_registries=["127.0.0.1:5001"]) as a:
        for role in ("viewer", "approver", "admin"):
            refused = await a.client.post(
                "/api/v1/images",
                json={"image_name": "app", "namespace": "acme", "registry": "127.0.0.1:5000"},
                headers=tokens.headers(role),
            )
            assert refused.status_code == 422, refused.text
            assert SETTING in refused.json()["detail"]
            assert refused.json()["code"] == "registry_not_allowed"
        # The built-in hosts, their case and Docker Hub's aliases, and the setting's own hosts.
        for host in ("ghcr.io", "QUAY.io", "index.docker.io", "127.0.0.1:5001"):
            await a.add_image(host, image_name=f"img-{len(host)}-{host[0].lower()}")
        async with sessionmaker() as session:
            hosts = set((await session.scalars(select(Image.registry_host))).all())
        assert "127.0.0.1:5000" not in hosts


async def test_the_admin_page_refuses_an_image_on_a_host_not_allowed(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with running(settings, tokens, sessionmaker) as a:
        csrf = await login(a.client, tokens.admin)
        sent = await a.client.post(
            "/images",
            data={
                "image_name": "app",
                "namespace": "acme",
                "registry": "127.0.0.1:5000",
                "csrf_token": csrf,
            },
            headers={"Referer": "http://tw/images"},
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == "/images"
        back = await a.client.get("/images")
        assert SETTING in back.text
    async with sessionmaker() as session:
        assert (await session.scalars(select(Image))).all() == []


def test_the_cli_refuses_an_image_on_a_host_not_allowed(cli_env: str) -> None:
    result = CliRunner().invoke(
        cli, ["images", "add", "app", "--namespace", "acme", "--registry", "127.0.0.1:5000"]
    )
    assert result.exit_code != 0
    assert SETTING in result.output.replace("\n", "")


async def test_an_image_already_stored_on_a_host_not_allowed_is_never_contacted(
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    internal: Loopback,
) -> None:
    # An image from before the allow-list (or a setting since narrowed): written directly.
    image_id = await add_image(
        sessionmaker,
        "app",
        namespace="acme",
        registry_host=internal.host,
        watch_for_updates=True,
    )
    async with running(settings, tokens, sessionmaker) as a:
        result = await a.check(image_id)
        assert SETTING in (result["error"] or "")
        assert SETTING in ((await a.image(image_id)).last_error or "")
    assert internal.seen == []


# -- redirects and remote text ---------------------------------------------------------------


async def test_a_redirect_to_an_internal_server_is_not_followed_and_nothing_of_it_is_shown(
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    internal: Loopback,
) -> None:
    def redirecting(_: BaseHTTPRequestHandler) -> Reply:
        return 302, {"Location": f"{internal.url}/latest/meta-data/"}, b"moved"

    with loopback(redirecting) as hostile:
        async with running(settings, tokens, sessionmaker, registries=registry(hostile)) as a:
            image_id = await a.add_image(hostile.host, watch_for_updates=True)
            result = await a.check(image_id)
            triggered = await a.client.post("/api/v1/images/monitor/trigger", headers=a.approver)
            shown = await a.client.get(f"/api/v1/images/{image_id}", headers=a.admin)
            status = await a.client.get("/api/v1/images/monitor/status", headers=a.admin)
            last_error = (await a.image(image_id)).last_error or ""

    assert hostile.seen, "the configured registry was asked"
    assert internal.seen == [], "the redirect to the internal server was followed"
    assert "redirect not followed" in last_error
    assert "302" in last_error
    for text in (last_error, json.dumps(result), triggered.text, shown.text, status.text):
        assert SECRET not in text
        assert "meta-data" not in text


async def test_an_error_body_never_lands_in_last_error(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    def refusing(_: BaseHTTPRequestHandler) -> Reply:
        return 400, {"Content-Type": "text/plain"}, SECRET.encode()

    with loopback(refusing) as hostile:
        async with running(settings, tokens, sessionmaker, registries=registry(hostile)) as a:
            image_id = await a.add_image(hostile.host, watch_for_updates=True)
            result = await a.check(image_id)
            shown = await a.client.get(f"/api/v1/images/{image_id}", headers=a.admin)
            last_error = (await a.image(image_id)).last_error or ""
    assert "400 Bad Request" in last_error
    for text in (last_error, json.dumps(result), shown.text):
        assert SECRET not in text


# -- credentials stay with their host --------------------------------------------------------


async def test_credentials_are_not_sent_to_a_host_a_link_header_names(
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    internal: Loopback,
) -> None:
    expected = basic_header("bot", "pat-0123")

    def basic_registry(handler: BaseHTTPRequestHandler) -> Reply:
        if handler.headers.get("Authorization") != expected:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        if handler.path.startswith("/v2/acme/app/tags/list"):
            link = f'<{internal.url}/v2/acme/app/tags/list?last=1.0&n=100>; rel="next"'
            body = json.dumps({"name": "acme/app", "tags": ["1.0"]}).encode()
            return 200, {"Content-Type": "application/json", "Link": link}, body
        return 200, {"Docker-Content-Digest": "sha256:" + "a" * 64}, b""

    with loopback(basic_registry) as hostile:
        credentials = registry(hostile, username="bot", password=SecretStr("pat-0123"))
        async with running(settings, tokens, sessionmaker, registries=credentials) as a:
            image_id = await a.add_image(hostile.host, watch_for_updates=True)
            result = await a.check(image_id)
            last_error = (await a.image(image_id)).last_error or ""

    assert any(s.authorization == expected for s in hostile.seen)
    assert internal.seen == [], [s.authorization for s in internal.seen]
    assert "another host" in last_error
    assert result["error"] == last_error


async def test_a_token_realm_on_an_internal_host_gets_no_credentials(
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    internal: Loopback,
) -> None:
    def bearer_registry(_: BaseHTTPRequestHandler) -> Reply:
        challenge = f'Bearer realm="{internal.url}/token",service="registry"'
        return 401, {"WWW-Authenticate": challenge}, b""

    with loopback(bearer_registry) as hostile:
        credentials = registry(hostile, username="bot", password=SecretStr("pat-0123"))
        async with running(settings, tokens, sessionmaker, registries=credentials) as a:
            image_id = await a.add_image(hostile.host, watch_for_updates=True)
            await a.check(image_id)
            last_error = (await a.image(image_id)).last_error or ""
    assert internal.seen == []
    assert "token realm refused" in last_error


# -- tags outside the grammar ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["hub", "oci"])
async def test_hostile_tags_are_dropped_while_the_good_tag_becomes_a_request(
    path: str,
    settings: Settings,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    fake = FakeRegistry(clock=clock)
    repository = "library/redis" if path == "hub" else "acme/app"
    fake.add_repository(repository, 0)
    fake.push_tag(repository, "7.2.5")
    for name in HOSTILE:  # pushed after the good one, so each is newer than it
        clock.advance(60)
        fake.push_tag(repository, name)
    caplog.set_level(logging.WARNING, logger="tagwarden.registry")

    async with running(
        settings,
        tokens,
        sessionmaker,
        transport=fake.transport(),
        dockerhub_api_url="http://hub.fake",
        registries={"ghcr.io": RegistryCredentials(url="http://ghcr.fake")},
    ) as a:
        a.app.state.monitor.state = RegistryState(clock=clock)
        if path == "hub":
            body = {"image_name": "redis", "registry": "docker.io"}
        else:
            body = {"image_name": "app", "namespace": "acme", "registry": "ghcr.io"}
        created = await a.client.post(
            "/api/v1/images",
            json={**body, "watch_for_updates": True, "tag_policy": "all"},
            headers=a.admin,
        )
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        result = await a.check(image_id)

    assert result["error"] is None
    assert result["requests_created"] == ["7.2.5"]
    async with sessionmaker() as session:
        requested = (
            await session.scalars(
                select(ApprovalRequest.tag_name).where(ApprovalRequest.image_id == image_id)
            )
        ).all()
        seen = (
            await session.scalars(
                select(DiscoveredTag.tag).where(DiscoveredTag.image_id == image_id)
            )
        ).all()
    assert list(requested) == ["7.2.5"]
    assert list(seen) == ["7.2.5"]
    for record in fake.stats.records:  # no request names a hostile tag
        for part in ("script", "..", "aaaaaaaaaa", "\n"):
            assert part not in record.path
    warnings = [r for r in caplog.records if "outside the tag grammar" in r.getMessage()]
    assert len(warnings) == 1
    assert f"dropped {len(HOSTILE)} tag name" in warnings[0].getMessage()


async def test_tag_names_outside_the_grammar_are_refused_where_a_person_names_a_tag(
    settings: Settings, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with running(settings, tokens, sessionmaker) as a:
        image_id = await a.add_image("docker.io")
        for name in HOSTILE:
            asked = await a.client.post(
                "/api/v1/images/approvals",
                json={"image_id": image_id, "tag_name": name},
                headers=a.admin,
            )
            assert asked.status_code == 422, (name, asked.text)
            for flag in ("recommended", "deprecated"):
                flagged = await a.client.post(
                    f"/api/v1/images/{image_id}/tags/{flag}", json={"tag": name}, headers=a.admin
                )
                assert flagged.status_code == 422, (name, flagged.text)
