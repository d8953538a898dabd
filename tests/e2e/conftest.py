"""A live tagwarden server and Debian's chromium, for the browser tests.

The server runs in a thread (uvicorn) on a free loopback port against the test database (SQLite
and PostgreSQL, through the suite's ``database_url`` fixture). Without /usr/bin/chromium the
tests skip with a visible reason, unless TAGWARDEN_REQUIRE_BROWSER=1, where that is a failure.
Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from tagwarden.app import create_app
from tagwarden.auth import service as auth
from tagwarden.db import make_engine, make_sessionmaker
from tests.factories import make_settings

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("TAGWARDEN_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion off this thread: Playwright's sync API owns its loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _make_tokens(url: str) -> dict[str, str]:
    engine = make_engine(url)
    raw: dict[str, str] = {}
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for role in ("admin", "approver", "viewer"):
                _, raw[role] = await auth.create_token(
                    session,
                    name=f"{role}-token",
                    role=role,
                    identity=f"{role}@example.com",
                    actor="test-setup",
                )
    finally:
        await engine.dispose()
    return raw


@dataclass
class LiveServer:
    url: str
    database_url: str
    tokens: dict[str, str]
    db_name: str
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(base_url=self.url, timeout=10)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def live_server(database_url: str, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    settings = make_settings(
        database_url,
        rollout_worker_enabled=True,
        rollout_tick_seconds=0.3,
        device_last_seen_flush_seconds=0.5,
        secret_key="e2e-secret-key-0123456789",
    )
    tokens = asyncio.run(_make_tokens(database_url))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="tagwarden-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    db_name = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    live = LiveServer(f"http://127.0.0.1:{port}", database_url, tokens, db_name)
    try:
        yield live
    finally:
        live.api.close()
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class Browser:
    page: Any
    server: LiveServer
    outside: list[str]
    csp_violations: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=str(SCREENSHOTS / f"{name}-{self.server.db_name}.png"), full_page=True
        )

    def login(self, role: str) -> None:
        """Sign in as a person does: type the token into its labelled field, press Enter."""
        response = self.page.goto(f"{self.server.url}/login")
        # The pages' Content-Security-Policy is on, so the browser enforces it in every test.
        assert "script-src 'self'" in response.headers["content-security-policy"]
        field = self.page.get_by_label("API token")
        field.fill(self.server.tokens[role])
        with self.page.expect_navigation():
            field.press("Enter")
        assert self.page.url == f"{self.server.url}/approvals", self.page.url


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"browser tests need Debian's chromium at {CHROMIUM} (make test-deps)"
        if REQUIRE_BROWSER:
            pytest.fail(f"TAGWARDEN_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = chromium.new_context(viewport={"width": 1280, "height": 900})

        def only_local(route: Any) -> None:
            # The pages must need nothing from outside the server: refuse and remember it.
            host = urlsplit(route.request.url).hostname
            if host not in ("127.0.0.1", "localhost"):
                outside.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(10_000)
        browser = Browser(page, live_server, outside)

        def on_console(message: Any) -> None:
            # Chromium reports what the CSP blocked ("Refused to apply inline style …").
            if "Content Security Policy" in message.text:
                browser.csp_violations.append(message.text)

        page.on("console", on_console)
        try:
            yield browser
        finally:
            context.close()
            chromium.close()
    assert outside == [], f"the pages asked for outside resources: {outside}"
    assert browser.csp_violations == [], (
        f"the CSP blocked parts of the pages: {browser.csp_violations}"
    )
