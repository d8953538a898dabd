"""The agent end to end, continued: the server away for a while, ``tagwarden-agent
status``, image pruning, a full disk. Same setting as test_agent_engine.py: a real Docker engine,
the real registry, the real server (here one that can be stopped and started again on its port).

A full disk is a fault injected at one engine call (the engine answers what a full disk makes
it answer); everything around it, the restore included, runs on the real engine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tagwarden.app import create_app
from tagwarden.cli.demo import prepare, serving
from tests.integration.docker_engine import (
    DockerEngine,
    TestImage,
    build_and_push,
    docker_engine,
    test_images,
)
from tests.integration.real_registry import RealRegistry
from tests.integration.test_agent_engine import (
    APP,
    REPOSITORY,
    Fleet,
    Server,
    agent_world,
    engine_settings,
    fleet,
    healthy_on_v2,
    server_database_url,
    wait_for,
)

__all__ = ["agent_world", "docker_engine", "fleet", "test_images"]  # fixtures

pytestmark = [pytest.mark.registry, pytest.mark.docker]

MORE_GOOD_VERSIONS = ("v5", "v6", "v7")  # good images, for updates beyond two


@dataclass
class RestartableServer(Server):
    """The real server under uvicorn, which a test can stop and start again on the same port."""

    _stack: ExitStack = field(default_factory=ExitStack)
    port: int = 0

    def _app(self) -> Any:
        app = create_app(self.settings)
        seen = self.requests

        @app.middleware("http")
        async def _record(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            seen.append((f"{request.method} {request.url.path}", response.status_code))
            return response

        return app

    def start(self) -> str:
        url = self._stack.enter_context(serving(self._app(), port=self.port))
        self.port = int(url.rsplit(":", 1)[1])
        return url

    def stop(self) -> None:
        self._stack.close()
        self._stack = ExitStack()


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tmp_path: Path, real_registry: RealRegistry
) -> Iterator[Server]:
    """test_agent_engine's server, restartable (the fleet fixture takes this one here)."""
    import httpx

    settings = engine_settings(server_database_url(request, tmp_path), real_registry)
    token = asyncio.run(prepare(settings))
    http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    restartable = RestartableServer("", token, settings, http)
    try:
        restartable.url = restartable.start()
        http.base_url = httpx.URL(restartable.url)
        yield restartable
    finally:
        restartable.stop()
        http.close()


@pytest.fixture(scope="module")
def more_images(docker_engine: DockerEngine, real_registry: RealRegistry) -> dict[str, TestImage]:
    return {v: build_and_push(docker_engine, real_registry, REPOSITORY, v)
            for v in MORE_GOOD_VERSIONS}  # fmt: skip


def _with(fleet: Fleet, more: dict[str, TestImage]) -> Fleet:
    fleet.images = {**fleet.images, **more}  # a copy: the session's dict stays as it is
    return fleet


def _assign(fleet: Fleet, uuid: str, version: str) -> None:
    """Point the device's app at ``version`` in the database, as a rollout's batch does, while
    no server runs: the state change the agent must find once the server is back."""
    from sqlalchemy import select

    from tagwarden.db import make_engine, make_sessionmaker, utcnow
    from tagwarden.devices import service as devices
    from tagwarden.devices.models import Device, DeviceApp

    image = fleet.images[version]

    async def run() -> None:
        engine = make_engine(fleet.server.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                device = await session.scalar(select(Device).where(Device.uuid == uuid))
                assert device is not None
                app = await session.scalar(
                    select(DeviceApp).where(
                        DeviceApp.device_id == device.id, DeviceApp.app_name == APP
                    )
                )
                devices.assign_target(
                    session, app, device.id, APP, image_id=fleet.image_id,
                    image=image.repository, tag=version, digest=image.digest, rollout_id=None,
                    now=utcnow(),
                )  # fmt: skip
                await devices.bump(session, [device.id])
        finally:
            await engine.dispose()

    asyncio.run(run())


def _running_report(fleet: Fleet, uuid: str) -> tuple[str | None, str | None]:
    reported = fleet.reported(uuid)
    return reported.get("digest"), reported.get("status")


def _polls(fleet: Fleet, uuid: str, since: int) -> list[int]:
    path = f"GET /api/v1/device/{uuid}/state"
    return [status for r, status in fleet.server.requests[since:] if r == path]


def test_the_server_stopped_for_a_while_containers_keep_running_and_polling_resumes(
    fleet: Fleet, more_images: dict[str, TestImage]
) -> None:
    fleet = _with(fleet, more_images)
    uuid = "down-a"
    agent = fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    healthy_on_v2(fleet, [uuid])
    v2, v5 = fleet.images["v2"].digest, fleet.images["v5"].digest
    _, _, thread = fleet.agents[uuid]
    server = fleet.server
    assert isinstance(server, RestartableServer)

    server.stop()
    # Backing off: polls failed in a row, the delay grows (waited for, not slept: a fixed
    # sleep would also grow the backoff before the server is back).
    wait_for("two failed polls in a row", lambda: agent.failures >= 2, 30)
    assert thread.is_alive()  # no crash
    assert fleet.running(uuid) == (v2, "healthy")  # the container was never touched
    assert len(fleet.containers(uuid)) == 1
    _assign(fleet, uuid, "v5")  # a new target while the agent cannot see it

    mark = len(server.requests)
    server.start()  # the same port
    # Backoff after a few failures is a few seconds (jittered); the first poll back gets the
    # new state, and the agent applies it.
    wait_for("a poll that reaches the server", lambda: 200 in _polls(fleet, uuid, mark), 40)
    wait_for("v5 running, healthy", lambda: fleet.running(uuid) == (v5, "healthy"), 60)
    wait_for("the report", lambda: _running_report(fleet, uuid) == (v5, "running"), 30)
    assert agent.failures == 0
    assert thread.is_alive()


def _status(fleet: Fleet, uuid: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGWARDEN_AGENT_")}
    env["DOCKER_HOST"] = fleet.engine.host
    done = subprocess.run(
        [sys.executable, "-m", "tagwarden_agent.cli", "status", "--device", uuid,
         "--state-dir", str(fleet.workdir / uuid)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_status_shows_target_and_running_per_app(fleet: Fleet) -> None:
    uuid = "status-a"
    fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    healthy_on_v2(fleet, [uuid])
    v2 = fleet.images["v2"].digest
    wait_for("v2 healthy", lambda: fleet.running(uuid) == (v2, "healthy"))

    lines = _status(fleet, uuid).splitlines()
    assert lines[0].split() == ["APP", "TARGET", "RUNNING", "STATE"]
    [row] = lines[1:]
    assert row.split() == [APP, v2, v2, "running", "(healthy)"]  # digests in full

    # The container gone behind the agent's back (stopped agent): the status says so.
    fleet.stop_agents()
    for container in fleet.containers(uuid):
        container.remove(force=True)
    [row] = _status(fleet, uuid).splitlines()[1:]
    assert row.split() == [APP, v2, "-", "not", "running", "(differs)"]


def _agent_web_images(fleet: Fleet) -> set[str]:
    """The agent/web versions present in the engine, by repo digest."""
    by_digest = {f"{i.repository}@{i.digest}": v for v, i in fleet.images.items()}
    client = fleet.engine.client()
    try:
        return {
            by_digest[d]
            for image in client.images.list()
            for d in image.attrs.get("RepoDigests") or []
            if d in by_digest
        }
    finally:
        client.close()


def test_images_pulled_beyond_the_last_two_per_app_are_pruned(
    fleet: Fleet, more_images: dict[str, TestImage]
) -> None:
    fleet = _with(fleet, more_images)
    client = fleet.engine.client()
    try:  # earlier tests' agents pulled some of these into the shared engine: start clean
        for image in fleet.images.values():
            with suppress(docker.errors.ImageNotFound):
                client.images.remove(f"{image.repository}@{image.digest}", force=True)
    finally:
        client.close()
    uuid = "prune-a"
    fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    healthy_on_v2(fleet, [uuid])
    for version in MORE_GOOD_VERSIONS:  # v2 → v5 → v6 → v7: four pulled, two kept
        fleet.activate(version)
        done = fleet.settled(fleet.rollout(version, [uuid])["id"])
        assert done["status"] == "completed", done
        assert fleet.running(uuid) == (fleet.images[version].digest, "healthy")
    assert _agent_web_images(fleet) == {"v6", "v7"}
    # v7 runs; v6 is the previous container, kept stopped for a quick rollback.
    digests = sorted(c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid))
    assert digests == sorted([fleet.images["v6"].digest, fleet.images["v7"].digest])


class _FullDiskAt:
    """Makes one call to the engine answer as the engine does when its disk is full."""

    def __init__(self, target: Any, method: str) -> None:
        self.armed = threading.Event()
        real = getattr(target, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed.is_set():
                self.armed.clear()
                raise docker.errors.APIError(
                    "500 Server Error: failed to register layer: write /var/lib/docker/"
                    "overlay2/x/diff/bin/busybox: no space left on device"
                )
            return real(*args, **kwargs)

        setattr(target, method, call)


@pytest.mark.parametrize("step", ["pull", "create"])
def test_no_space_left_on_device_is_disk_full_and_the_previous_container_runs(
    fleet: Fleet, more_images: dict[str, TestImage], step: str
) -> None:
    from tagwarden_agent.agent import Agent
    from tagwarden_agent.engine import Engine

    fleet = _with(fleet, more_images)
    uuid = f"full-{step}"
    key = fleet.server.register(uuid, fleet.workdir)
    engine = Engine(uuid, docker_config=fleet.docker_config, base_url=fleet.engine.host)
    # The engine's own API, with the fault in front of the call a full disk fails: the pull
    # (before the switch) or the new container's create (after the old one was stopped).
    fault = _FullDiskAt(engine.client.api, "pull" if step == "pull" else "create_container")
    agent = Agent(fleet.options(uuid, key), engine)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    fleet.agents[uuid] = (agent, stop, thread)
    healthy_on_v2(fleet, [uuid])
    v2 = fleet.images["v2"].digest

    fault.armed.set()
    fleet.activate("v5")
    done = fleet.settled(fleet.rollout("v5", [uuid])["id"])
    assert done["devices"][0]["failure_reason"] == "disk_full", done
    reported = fleet.reported(uuid)
    assert (reported["status"], reported["reason"]) == ("failed", "disk_full")
    assert "no space left on device" in reported["message"]
    assert reported["digest"] == v2  # what runs now
    wait_for("v2 healthy", lambda: fleet.running(uuid) == (v2, "healthy"))
    digests = [c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid)]
    assert digests == [v2]  # restored; nothing of v5 is left
    assert "v5" not in _agent_web_images(fleet)
