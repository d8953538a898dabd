"""App definitions on both databases: the API and its refusals, the audit,
and the device state that carries each app's config, checked against contracts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.audit.models import AuditEntry
from tagwarden.config import Settings
from tagwarden.devices.models import DeviceApp
from tagwarden.testing.clock import FakeClock
from tests.factories import (
    NEW,
    activate,
    add_image,
    bearer,
    make_settings,
    monitor_for,
    register,
    rollout,
)

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ROOT = "/srv/tagwarden"
CONFIG: dict[str, Any] = {
    "command": ["redis-server", "--appendonly", "yes"],
    "env": {"TZ": "UTC"},
    "ports": ["127.0.0.1:6379:6379/tcp"],
    "volumes": ["redis-data:/data", f"{ROOT}/redis/conf:/etc/redis:ro"],
    "restart": "unless-stopped",
    "network_mode": "host",
    "labels": {"team": "cache"},
    "healthcheck": {
        "test": ["CMD", "redis-cli", "ping"],
        "interval_seconds": 5,
        "timeout_seconds": 2,
        "retries": 3,
    },
}


def contract(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((CONTRACTS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, app_bind_roots=[ROOT])


async def put(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, image_id: int, config: Any
) -> httpx.Response:
    return await client.put(
        f"/api/v1/apps/{name}", json={"image_id": image_id, "config": config}, headers=headers
    )


async def audit_of(sessionmaker: async_sessionmaker[AsyncSession]) -> list[AuditEntry]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "app").order_by(AuditEntry.id)
        )
        return list(rows.all())


async def test_an_admin_puts_shows_lists_and_deletes_an_app_and_each_change_is_audited(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    admin = tokens.headers("admin")
    created = await put(client, admin, "redis", image_id, CONFIG)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == CONFIG | {
        "healthcheck": CONFIG["healthcheck"] | {"interval_seconds": 5.0, "timeout_seconds": 2.0}
    }
    assert created.json()["created_by"] == "admin@example.com"

    shown = await client.get("/api/v1/apps/redis", headers=tokens.headers("viewer"))
    assert shown.status_code == 200
    assert shown.json()["image_id"] == image_id
    listed = await client.get("/api/v1/apps", headers=tokens.headers("viewer"))
    assert [a["name"] for a in listed.json()] == ["redis"]

    # A string command is split as a shell would, and kept as the exec form.
    replaced = await put(client, admin, "redis", image_id, {"command": "redis-server --save ''"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["config"] == {"command": ["redis-server", "--save", ""]}
    same = await put(client, admin, "redis", image_id, {"command": ["redis-server", "--save", ""]})
    assert same.status_code == 200

    deleted = await client.delete("/api/v1/apps/redis", headers=admin)
    assert deleted.status_code == 200
    assert (await client.get("/api/v1/apps/redis", headers=admin)).status_code == 404
    assert (await client.delete("/api/v1/apps/redis", headers=admin)).status_code == 404

    entries = await audit_of(sessionmaker)
    # The unchanged put is no change: three entries, not four.
    assert [e.action for e in entries] == ["app.put", "app.put", "app.deleted"]
    assert entries[0].before is None
    assert entries[0].after is not None
    assert entries[0].after["config"]["restart"] == "unless-stopped"
    assert entries[1].before == entries[0].after
    assert entries[1].after == {
        "name": "redis",
        "image_id": image_id,
        "config": {"command": ["redis-server", "--save", ""]},
    }
    assert entries[2].before == entries[1].after
    assert entries[2].after is None
    assert {e.actor for e in entries} == {"admin@example.com"}


@pytest.mark.parametrize("role", ["viewer", "approver"])
async def test_only_an_admin_writes_apps(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
) -> None:
    image_id = await add_image(sessionmaker)
    assert (await put(client, tokens.headers(role), "redis", image_id, {})).status_code == 403
    assert (await put(client, tokens.headers("admin"), "redis", image_id, {})).status_code == 201
    refused = await client.delete("/api/v1/apps/redis", headers=tokens.headers(role))
    assert refused.status_code == 403
    assert (await client.get("/api/v1/apps/redis")).status_code == 401
    assert len(await audit_of(sessionmaker)) == 1


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"privileged": True}, "privileged mode is not allowed"),
        ({"privileged": False}, "privileged mode is not allowed"),
        ({"pid": "host"}, "host PID namespace is not allowed"),
        ({"ipc": "host"}, "host IPC namespace is not allowed"),
        ({"cap_add": ["NET_ADMIN"]}, "added capabilities are not allowed"),
        ({"devices": ["/dev/ttyUSB0:/dev/ttyUSB0"]}, "host devices are not allowed"),
        ({"volumes": ["/etc:/host-etc"]}, "/etc is outside the allowed roots (/srv/tagwarden)"),
        ({"volumes": ["/srv/tagwarden-other:/x"]}, "outside the allowed roots"),
        ({"volumes": [f"{ROOT}/../../etc:/x"]}, "the host path must be normalised"),
        ({"volumes": [f"{ROOT}/./a:/x"]}, "the host path must be normalised"),
        ({"volumes": [f"/{ROOT}:/x"]}, "the host path must be normalised"),
        ({"volumes": ["./data:/data"]}, "relative paths are not allowed"),
        ({"volumes": ["data:/data:rx"]}, "the mode is ro or rw"),
        ({"volumes": ["data:../data"]}, "the container path must be absolute"),
        ({"labels": {"io.tagwarden.app": "other"}}, "io.tagwarden.* labels are the agent's"),
        ({"ports": ["99999:80"]}, "is not a port"),
        ({"restart": "sometimes"}, "config.restart"),
        ({"healthcheck": {"test": ["ping"]}}, "test must start with one of CMD"),
        ({"entrypoint": ["/bin/sh"]}, "config.entrypoint: Extra inputs are not permitted"),
        ({"env": {"A": 1}}, "config.env.A"),
    ],
)
async def test_a_config_that_would_give_a_container_the_host_is_refused_with_the_reason(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    config: dict[str, Any],
    says: str,
) -> None:
    image_id = await add_image(sessionmaker)
    refused = await put(client, tokens.headers("admin"), "redis", image_id, config)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_input"
    assert says in refused.json()["detail"]
    assert (await client.get("/api/v1/apps", headers=tokens.headers("admin"))).json() == []
    assert await audit_of(sessionmaker) == []


async def test_bind_mounts_inside_the_roots_are_accepted(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    image_id = await add_image(sessionmaker)
    for volumes, status in (([f"{ROOT}:/data"], 201), ([f"{ROOT}/a/b:/data:rw"], 200)):
        accepted = await put(
            client, tokens.headers("admin"), "redis", image_id, {"volumes": volumes}
        )
        assert accepted.status_code == status, accepted.text  # created, then replaced
        assert accepted.json()["config"] == {"volumes": volumes}


@pytest.mark.parametrize(
    ("name", "status"),
    [("Redis", 422), ("-x", 422), ("a b", 422), ("x" * 101, 422)],
)
async def test_app_names_follow_the_app_name_grammar(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    status: int,
) -> None:
    image_id = await add_image(sessionmaker)
    refused = await put(client, tokens.headers("admin"), name, image_id, {})
    assert refused.status_code == status, refused.text
    assert (await client.get("/api/v1/apps", headers=tokens.headers("admin"))).json() == []


async def test_an_unknown_image_is_a_404(client: httpx.AsyncClient, tokens: Any) -> None:
    missing = await put(client, tokens.headers("admin"), "redis", 424242, {})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "image 424242 not found"


async def _rolled_out(
    client: httpx.AsyncClient,
    tokens: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    app: Any,
    uuid: str = "d1",
    **image: Any,
) -> tuple[int, str]:
    """A device with a target for app ``redis`` (or the named image), the rollout ticked."""
    key = await register(client, tokens.headers("admin"), uuid)
    image_id = await add_image(sessionmaker, **image)
    await activate(sessionmaker, image_id, "7.2.5-alpine", NEW)
    await rollout(client, tokens.headers("approver"), devices=[uuid], strategy="all-at-once")
    await monitor_for(app, FakeClock.at_wall_time()).tick()
    return image_id, key


async def test_the_state_carries_the_apps_config_and_a_config_change_is_a_new_state(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    image_id, key = await _rolled_out(client, tokens, sessionmaker, app)
    state = contract("device-state")
    before = await client.get("/api/v1/device/d1/state", headers=bearer(key))
    assert before.json()["apps"]["redis"]["config"] == {}  # no definition: the image as it is
    state.validate(before.json())

    assert (await put(client, tokens.headers("admin"), "redis", image_id, CONFIG)).is_success
    stale = await client.get(
        "/api/v1/device/d1/state", headers=bearer(key) | {"If-None-Match": before.headers["etag"]}
    )
    assert stale.status_code == 200  # the old ETag no longer matches
    assert stale.headers["etag"] != before.headers["etag"]
    body = stale.json()
    state.validate(body)
    assert body["apps"]["redis"]["image"] == f"redis:7.2.5-alpine@{NEW}"
    assert body["apps"]["redis"]["config"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert body["apps"]["redis"]["config"]["volumes"] == CONFIG["volumes"]

    # The new ETag is answered 304, from the device index too once it has caught up.
    await app.state.device_index.refresh()
    again = await client.get(
        "/api/v1/device/d1/state", headers=bearer(key) | {"If-None-Match": stale.headers["etag"]}
    )
    assert again.status_code == 304

    assert (await client.delete("/api/v1/apps/redis", headers=tokens.headers("admin"))).is_success
    gone = await client.get(
        "/api/v1/device/d1/state", headers=bearer(key) | {"If-None-Match": stale.headers["etag"]}
    )
    assert gone.status_code == 200
    assert gone.json()["apps"]["redis"]["config"] == {}


async def test_a_report_as_the_contract_describes_it_is_accepted(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    reports = [
        {"apps": {"redis": {"status": "downloading", "message": "update locked"}}},
        {"apps": {"redis": {"status": "installing", "health": "unknown"}}},
        {
            "apps": {
                "redis": {
                    "status": "running",
                    "health": "healthy",
                    "image": f"redis:7.2.5-alpine@{NEW}",
                    "digest": NEW,
                }
            }
        },
    ] + [
        {"apps": {"redis": {"status": "failed", "reason": reason, "message": "why", "digest": NEW}}}
        for reason in ("pull_failed", "disk_full", "unhealthy", "crashloop", "timeout", "other")
    ]
    schema = contract("device-report")
    for body in reports:
        schema.validate(body)
        response = await client.patch("/api/v1/device/d1/state", json=body, headers=bearer(key))
        assert response.status_code == 200, (body, response.text)
    # And what the contract refuses, the server refuses.
    for bad in (
        {"apps": {"redis": {"status": "exploded"}}},
        {"apps": {"redis": {"status": "failed", "reason": "gremlins"}}},
    ):
        assert not schema.is_valid(bad)
        response = await client.patch("/api/v1/device/d1/state", json=bad, headers=bearer(key))
        assert response.status_code == 422


async def test_an_image_on_another_registry_keeps_its_host_in_the_state(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    key = await register(client, tokens.headers("admin"), "d1")
    image_id = await add_image(
        sessionmaker, "app", namespace="demo", registry_host="127.0.0.1:5000"
    )
    await activate(sessionmaker, image_id, "1.0", NEW)
    await rollout(
        client,
        tokens.headers("approver"),
        image="127.0.0.1:5000/demo/app",
        tag="1.0",
        devices=["d1"],
        strategy="all-at-once",
    )
    await monitor_for(app, FakeClock.at_wall_time()).tick()
    body = (await client.get("/api/v1/device/d1/state", headers=bearer(key))).json()
    contract("device-state").validate(body)
    assert body["apps"]["app"]["image"] == f"127.0.0.1:5000/demo/app:1.0@{NEW}"


async def test_an_app_runs_only_its_own_image(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    redis_id, _ = await _rolled_out(client, tokens, sessionmaker, app)
    other = await add_image(sessionmaker, "valkey")
    await activate(sessionmaker, other, "8.0", NEW)
    # Devices run app redis from image redis: its definition may not name another image.
    moved = await put(client, tokens.headers("admin"), "redis", other, {})
    assert moved.status_code == 409
    assert moved.json()["code"] == "app_image_mismatch"
    # And with a definition, a rollout may not put another image under the app's name.
    assert (await put(client, tokens.headers("admin"), "redis", redis_id, {})).is_success
    refused = await client.post(
        "/api/v1/rollouts",
        json={"image": "valkey", "tag": "8.0", "app": "redis", "devices": ["d1"]},
        headers=tokens.headers("approver"),
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "app_image_mismatch"


async def test_a_target_of_another_image_never_gets_the_apps_config(
    client: httpx.AsyncClient, tokens: Any, sessionmaker: async_sessionmaker[AsyncSession], app: Any
) -> None:
    # A rollback can restore a target of an image the definition is not for: the device runs
    # that image as it is, never with another image's config.
    image_id, key = await _rolled_out(client, tokens, sessionmaker, app)
    assert (await put(client, tokens.headers("admin"), "redis", image_id, CONFIG)).is_success
    other = await add_image(sessionmaker, "redis", namespace="someone")
    async with sessionmaker() as session, session.begin():
        await session.execute(update(DeviceApp).values(image_id=other))
    state = await client.get("/api/v1/device/d1/state", headers=bearer(key))
    assert state.status_code == 200
    assert state.json()["apps"]["redis"]["config"] == {}
