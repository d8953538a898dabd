"""Request bodies are bounded before they are parsed, on both databases.

The body tests drive the ASGI app directly, with a ``receive`` that counts what it hands out:
that is how "the app never read it" can be asserted, which no HTTP client can see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tagwarden.app import create_app
from tagwarden.config import Settings
from tagwarden.limits import json_depth
from tests.factories import add_redis, bearer, register

MIB = 1024 * 1024
CHUNK = 64 * 1024
SECRET = "hub-secret-0123456789abcdef"


@dataclass
class Sent:
    status: int
    body: bytes
    pulled: int  # body bytes the app took from receive
    receive_calls: int
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: FastAPI,
    method: str,
    path: str,
    *,
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
) -> Sent:
    """One request through the ASGI interface; the body is handed out chunk by chunk, only
    when the app asks for it."""
    pulled = calls = 0
    pending = list(chunks)
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal pulled, calls
        calls += 1
        if pending:
            chunk = pending.pop(0)
            pulled += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await finished.wait()  # nothing more to read until the response is over
        return {"type": "http.disconnect"}

    status = 0
    body = b""
    response_headers: dict[str, str] = {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update(
                (k.decode().lower(), v.decode()) for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return Sent(status, body, pulled, calls, response_headers)


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """A JSON value ``depth`` objects deep (built as text: json.dumps would recurse)."""
    return b'{"a":' * depth + leaf + b"}" * depth


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


def big_json(size: int) -> list[bytes]:
    """A valid JSON array of ``size`` bytes, in CHUNK-sized pieces."""
    data = b"[" + b"1," * ((size - 2) // 2) + b"1]"
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


async def test_a_2_mib_body_is_answered_413_without_being_read(app: FastAPI, tokens: Any) -> None:
    chunks = big_json(2 * MIB)
    sent = await call(
        app,
        "POST",
        "/api/v1/images",
        chunks=chunks,
        headers=tokens.headers("admin")
        | {"content-type": "application/json", "content-length": str(sum(map(len, chunks)))},
    )
    assert sent.status == 413
    assert sent.json()["code"] == "body_too_large"
    assert set(sent.json()) == {"detail", "code"}
    assert (sent.pulled, sent.receive_calls) == (0, 0)


async def test_a_100_mb_unauthenticated_body_is_413_not_a_401_after_parsing(
    app: FastAPI,
) -> None:
    # Declared 100 MB, a few bytes sent: nothing is read, nothing authenticated or parsed.
    sent = await call(
        app,
        "POST",
        "/api/v1/images",
        chunks=[b'{"image_name": "redis"'],
        headers={"content-type": "application/json", "content-length": str(100 * 1000 * 1000)},
    )
    assert sent.status == 413
    assert sent.json()["code"] == "body_too_large"
    assert sent.pulled == 0


@pytest.mark.parametrize("authorised", [True, False])
async def test_a_chunked_body_past_the_limit_is_cut_off_at_the_limit(
    app: FastAPI, tokens: Any, authorised: bool
) -> None:
    chunks = big_json(3 * MIB)
    headers = tokens.headers("admin") if authorised else {}
    sent = await call(
        app,
        "POST",
        "/api/v1/images",
        chunks=chunks,
        headers=headers | {"content-type": "application/json", "transfer-encoding": "chunked"},
    )
    assert sent.status == 413, sent.body
    assert sent.json()["code"] == "body_too_large"
    # Reading stopped at the first chunk past the limit; the rest was never pulled.
    assert MIB < sent.pulled <= MIB + CHUNK


async def test_an_admin_form_past_the_limit_is_413_without_reading_the_rest(
    app: FastAPI,
) -> None:
    form = b"token=" + b"x" * (2 * MIB)
    chunks = [form[i : i + CHUNK] for i in range(0, len(form), CHUNK)]
    sent = await call(
        app,
        "POST",
        "/login",
        chunks=chunks,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert sent.status == 413
    assert sent.json()["code"] == "body_too_large"
    assert sent.pulled <= MIB + CHUNK


async def test_a_body_within_the_limit_still_works(client: httpx.AsyncClient, tokens: Any) -> None:
    description = "x" * 2000
    response = await client.post(
        "/api/v1/images",
        json={"image_name": "redis", "description": description},
        headers=tokens.headers("admin"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == description


@pytest.mark.parametrize("secret", ["wrong-secret-0123456789abcdef", "x"])
async def test_the_docker_hub_webhook_refuses_a_wrong_secret_without_reading_the_body(
    app: FastAPI, secret: str
) -> None:
    payload = json.dumps({"push_data": {"tag": "1.0"}, "repository": {"repo_name": "a/b"}})
    sent = await call(
        app,
        "POST",
        f"/api/v1/webhooks/dockerhub/{secret}",
        chunks=[payload.encode()],
        headers={"content-type": "application/json", "transfer-encoding": "chunked"},
    )
    assert sent.status == 401
    assert sent.json()["code"] == "unauthorized"
    assert sent.pulled == 0


async def test_the_docker_hub_webhook_with_its_secret_still_reads_the_body(app: FastAPI) -> None:
    payload = json.dumps({"push_data": {"tag": "1.0"}, "repository": {"repo_name": "a/b"}})
    sent = await call(
        app,
        "POST",
        f"/api/v1/webhooks/dockerhub/{SECRET}",
        chunks=[payload.encode()],
        headers={"content-type": "application/json"},
    )
    assert sent.status == 202, sent.body
    assert sent.json()["results"][0]["status"] == "ignored"


# -- depth -------------------------------------------------------------------------------------


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b"1") == 0
    assert json_depth(b"[]") == 1
    assert json_depth(b'{"a": [{"b": "[[[[{{"}]}') == 3
    assert json_depth(b'{"a": "\\\\", "b": [[1]]}') == 3  # an escaped backslash ends no string
    assert json_depth(b'{"a": "\\"[[[["}') == 1  # an escaped quote ends no string
    assert json_depth(nested(65)) == 65
    assert json_depth(b"[" * 100_000) == 100_000


Deep = tuple[str, str, bytes, dict[str, str]]


async def _deep_bodies(client: httpx.AsyncClient, tokens: Any) -> list[Deep]:
    image = await add_redis(client, tokens.headers("admin"))
    key = await register(client, tokens.headers("admin"), "d1")
    admin = tokens.headers("admin")
    return [
        ("POST", "/api/v1/images", b'{"image_name": "nginx", "x": ' + nested(64) + b"}", admin),
        (
            "POST",
            "/api/v1/images/approvals",
            b'{"image_id": %d, "tag_name": "1.0", "metadata": {"architectures": ["amd64"], '
            b'"x": %s}}' % (image["id"], nested(63)),
            admin,
        ),
        ("PATCH", "/api/v1/device/d1/state", b'{"apps": ' + nested(64) + b"}", bearer(key)),
        (
            "POST",
            "/api/v1/notifications/channels",
            b'{"name": "n", "kind": "webhook", "events": ["*"], "config": ' + nested(64) + b"}",
            admin,
        ),
    ]


async def test_json_nested_deeper_than_64_levels_is_a_422_on_every_route(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    for method, path, body, headers in await _deep_bodies(client, tokens):
        assert json_depth(body) == 65
        response = await client.request(
            method, path, content=body, headers=headers | {"content-type": "application/json"}
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "too_deep", (path, response.text)


@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_json_far_too_deep_is_a_422_never_a_server_error(
    client: httpx.AsyncClient, tokens: Any, depth: int
) -> None:
    await add_redis(client, tokens.headers("admin"))
    body = b'{"image_id": 1, "tag_name": "1.0", "metadata": ' + nested(depth) + b"}"
    for content_type in ("application/json", "text/plain", None):
        headers = tokens.headers("admin") | ({"content-type": content_type} if content_type else {})
        response = await client.post("/api/v1/images/approvals", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "too_deep"
    # The webhooks parse whatever they are sent.
    hook = await client.post(f"/api/v1/webhooks/dockerhub/{SECRET}", content=nested(depth))
    assert hook.status_code == 422, hook.text


async def test_json_64_levels_deep_is_accepted_where_the_schema_allows(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    image = await add_redis(client, tokens.headers("admin"))
    body = (
        b'{"image_id": %d, "tag_name": "1.0", "metadata": {"architectures": ["amd64"], '
        b'"x": %s}}' % (image["id"], nested(62))
    )
    assert json_depth(body) == 64
    response = await client.post(
        "/api/v1/images/approvals",
        content=body,
        headers=tokens.headers("admin") | {"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    shown = await client.get(
        f"/api/v1/images/approvals/{response.json()['id']}", headers=tokens.headers("viewer")
    )
    assert shown.status_code == 200
    value = shown.json()["metadata"]["x"]
    for _ in range(61):
        value = value["a"]
    assert value == {"a": 1}
