"""`tagwarden devices`, `rollouts` and `simulate-fleet` on both databases, with a live server
(uvicorn on a free loopback port, in a thread) advancing the rollouts."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tagwarden.app import create_app
from tagwarden.auth import service as auth
from tagwarden.cli.demo import serving
from tagwarden.cli.main import app
from tagwarden.db import make_engine, make_sessionmaker
from tests.factories import NEW, activate, add_image, make_settings

runner = CliRunner()
TAG = "7.2.5-alpine"


def _seed(url: str) -> str:
    """redis 7.2.5-alpine activated for amd64 and arm64; returns an admin token."""

    async def go() -> str:
        engine = make_engine(url)
        try:
            sessionmaker = make_sessionmaker(engine)
            image_id = await add_image(sessionmaker)
            await activate(sessionmaker, image_id, TAG, NEW)
            async with sessionmaker() as session, session.begin():
                _, raw = await auth.create_token(
                    session, name="cli", role="admin", identity="a@example.com", actor="test"
                )
            return raw
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture
def live(cli_env: str) -> Iterator[tuple[str, str]]:
    """(server URL, admin token): the rollout monitor on, ticking fast."""
    token = _seed(cli_env)
    settings = make_settings(
        cli_env,
        rollout_worker_enabled=True,
        rollout_tick_seconds=0.2,
        device_poll_interval_seconds=2,
        device_active_poll_interval_seconds=1,
        device_last_seen_flush_seconds=0.2,
        device_index_refresh_seconds=0.2,
    )
    with serving(create_app(settings)) as url:
        yield url, token


def _invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _wait_for(what: str, check: Any, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_devices_and_rollouts_commands_drive_a_rollout_on_a_live_server(
    live: tuple[str, str],
) -> None:
    url, _ = live
    keys = {}
    for uuid, arch in (("d1", "amd64"), ("d2", "aarch64")):
        added = _invoke("devices", "add", uuid, "--arch", arch, "--label", "site=shop")
        assert f"Registered device {uuid}" in added.stdout
        match = re.search(r"device key \(shown once\): (\S+)", added.stdout)
        assert match is not None
        keys[uuid] = match.group(1)
    listed = _invoke("devices", "list")
    assert re.search(r"d2\s.*arm64\s.*site=shop\s.*never", listed.stdout)

    refused = runner.invoke(app, ["rollouts", "create", "redis", "9.9.9", "-d", "d1"])
    assert refused.exit_code == 1
    assert "not approved" in refused.output

    plan = _invoke("rollouts", "create", "redis", TAG, "--label", "site=shop", "--dry-run")
    assert "batch 1: d1" in plan.stdout
    assert "Created rollout" not in plan.stdout
    options = "-d d1 -d d2 --strategy all-at-once --bake-seconds 0"
    created = _invoke("rollouts", "create", "redis", TAG, *options.split())
    assert "batch 1: d1, d2" in created.stdout
    assert "Created rollout 1: redis:7.2.5-alpine" in created.stdout

    with httpx.Client(base_url=url) as client:

        def devices_run_it() -> bool:
            done = True
            for uuid, key in keys.items():
                auth_header = {"Authorization": f"Bearer {key}"}
                state = client.get(f"/api/v1/device/{uuid}/state", headers=auth_header)
                target = state.json()["apps"].get("redis")
                if not target:
                    done = False
                    continue
                body = {"image": target["image"], "status": "running", "health": "healthy"}
                client.patch(
                    f"/api/v1/device/{uuid}/state",
                    json={"apps": {"redis": body}},
                    headers=auth_header,
                ).raise_for_status()
            return done and "completed" in _invoke("rollouts", "list").stdout

        _wait_for("the rollout to complete", devices_run_it)

    listed_rollouts = _invoke("rollouts", "list").stdout
    assert re.search(r"1\s.*redis:7\.2\.5-alpine\s.*all-at-once\s.*completed\s.*succeeded 2",
                     listed_rollouts)  # fmt: skip
    shown = _invoke("rollouts", "show", "1").stdout
    assert "rollout 1 redis:7.2.5-alpine (all-at-once) completed" in shown
    assert len(re.findall(r"d[12]\s.*succeeded", shown)) == 2
    # Last-seen was flushed by the live server's presence writer.
    assert "never" not in _wait_for(
        "last-seen to be written",
        lambda: (out := _invoke("devices", "list").stdout).count("never") == 0 and out,
    )


def test_simulate_fleet_registers_polls_and_runs_a_rollout_on_a_live_server(
    live: tuple[str, str],
) -> None:
    url, token = live
    headers = {"Authorization": f"Bearer {token}"}
    created: list[dict[str, Any]] = []

    def roll_out_once_registered() -> None:
        # The fleet registers itself when the command starts; the rollout then targets it.
        with httpx.Client(base_url=url, headers=headers) as client:

            def registered() -> bool:
                listing = client.get("/api/v1/devices", params={"label": "fleet=sim"})
                return bool(listing.json()["total"] == 4)

            _wait_for("the simulated fleet to register", registered)
            body = {
                "image": "redis",
                "tag": TAG,
                "selector": {"fleet": "sim"},
                "strategy": "all-at-once",
                "options": {"bake_seconds": 0},
            }
            response = client.post("/api/v1/rollouts", json=body)
            response.raise_for_status()
            created.append(response.json())

    thread = threading.Thread(target=roll_out_once_registered)
    thread.start()
    command = "simulate-fleet --devices 4 --label fleet=sim --arch amd64 --arch arm64"
    options = "--duration 6 --speed 10 --seed 1"
    result = runner.invoke(
        app, [*command.split(), *options.split(), "--url", url, "--token", token]
    )
    thread.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert created, "the rollout was not created"
    assert re.search(r"simulated fleet sim-\w+: 4 devices", result.stdout)
    assert re.search(r"redis running sha256:a1a1a1a1a1a1\s*│?\s*4", result.stdout)
    assert re.search(r"updated\s*│?\s*4\b", result.stdout)
    assert re.search(r"304 not modified\s*│?\s*[1-9]", result.stdout)
    with httpx.Client(base_url=url, headers=headers) as client:
        rollout = _wait_for(
            "the rollout to complete",
            lambda: (
                (r := client.get(f"/api/v1/rollouts/{created[0]['id']}").json())["status"]
                == "completed"
                and r
            ),
        )
    assert rollout["counts"]["succeeded"] == 4


def test_operator_actions_from_the_command_line(cli_env: str) -> None:
    _seed(cli_env)
    _invoke("devices", "add", "edge-1", "--arch", "amd64")
    created = _invoke("rollouts", "create", "redis", TAG, "-d", "edge-1")
    rollout_id = re.search(r"Created rollout (\d+)", created.stdout)
    assert rollout_id is not None
    rid = rollout_id.group(1)

    assert "paused: now paused" in _invoke("rollouts", "pause", rid).stdout
    assert "resumed: now pending" in _invoke("rollouts", "resume", rid).stdout
    assert "aborted: now aborted" in _invoke("rollouts", "abort", rid).stdout
    refused = runner.invoke(app, ["rollouts", "pause", rid])
    assert refused.exit_code == 1
    assert "is aborted" in refused.output
    assert "rolled back: now rolled_back" in _invoke("rollouts", "rollback", rid).stdout
