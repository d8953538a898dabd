"""A real docker-registry on loopback notifies a live tagwarden server; a push becomes a request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.app import create_app
from tagwarden.approvals.models import ApprovalRequest
from tagwarden.config import Settings
from tests.factories import add_image, make_settings
from tests.integration.real_registry import _free_port, require_registry, start_registry

pytestmark = pytest.mark.registry
SECRET = "registry-notify-secret-0123456789"


@contextmanager
def serve_in_thread(settings: Settings, port: int) -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("tagwarden did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=20)


async def test_a_push_to_a_real_registry_produces_an_approval_request_through_its_webhook(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    require_registry()
    port = _free_port()
    notifications = {
        "endpoints": [
            {
                "name": "tagwarden",
                "url": f"http://127.0.0.1:{port}/api/v1/webhooks/registry",
                "headers": {"Authorization": [f"Bearer {SECRET}"]},
                "timeout": "2s",
                "threshold": 3,
                "backoff": "500ms",
                "ignore": {"actions": ["pull"]},
            }
        ]
    }
    with start_registry(tmp_path, notifications=notifications) as registry:
        await add_image(
            sessionmaker,
            "app",
            namespace="fleet",
            registry_host=registry.host,
            watch_for_updates=False,
        )
        configured = make_settings(
            settings.database_url,
            webhook_secret=SecretStr(SECRET),
            registries={registry.host: registry.credentials()},
        )
        with serve_in_thread(configured, port):
            pushed = await asyncio.to_thread(registry.push_multiarch, "fleet/app", "2.0.0")
            request = None
            for _ in range(200):  # the registry notifies asynchronously, from its own queue
                async with sessionmaker() as session:
                    request = await session.scalar(select(ApprovalRequest))
                if request is not None:
                    break
                await asyncio.sleep(0.1)
    assert request is not None, registry.log_file.read_text()[-2000:]
    assert request.tag_name == "2.0.0"
    assert request.digest == pushed.digest
    assert request.metadata_["platforms"] == pushed.platform_digests
