"""The agent end to end: a real Docker engine, the real registry, the real server.

Images are built FROM scratch around busybox and pushed to Debian's docker-registry
(tests/integration/docker_engine.py); the server is tagwarden's app under uvicorn on a loopback
port; agents are in-process loops (two device uuids on one engine) or a ``tagwarden-agent``
process (the kill -9 tests). The server's database is SQLite, and PostgreSQL as well for the
canary rollout and the unhealthy update (``server`` takes the kind indirectly): the rollout and
report paths run on both databases in test_rollouts.py, and each engine test costs seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagwarden.app import create_app
from tagwarden.cli.demo import prepare, serving
from tagwarden.config import Settings
from tests.conftest import fresh_database_url
from tests.factories import make_settings
from tests.integration.docker_engine import DockerEngine, TestImage, docker_engine, test_images
from tests.integration.real_registry import RealRegistry

__all__ = ["docker_engine", "test_images"]  # session fixtures

pytestmark = [pytest.mark.registry, pytest.mark.docker]

REPOSITORY = "agent/web"
APP = "web"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Server:
    url: str
    token: str
    settings: Settings
    http: httpx.Client
    requests: list[tuple[str, int]] = field(default_factory=list)  # (method path, status)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201), f"{method} {path}: {response.text}"
        return response.json()

    def register(self, uuid: str, directory: Path) -> Path:
        body = {"uuid": uuid, "architecture": "amd64", "labels": {"fleet": "agent-tests"}}
        key = self.ok("POST", "/api/v1/devices", json=body)["device_key"]
        path = directory / f"{uuid}.key"
        path.write_text(key + "\n")
        return path


def _docker_config(directory: Path, registry: RealRegistry) -> Path:
    """The device's ~/.docker/config.json: where the agent's registry credentials come from."""
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    path = directory / "docker-config.json"
    path.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return path


def engine_settings(database_url: str, real_registry: RealRegistry) -> Settings:
    """The server the agents talk to: a fresh database, the rollout worker ticking fast,
    devices told to poll every second, last-seen flushed often, the real registry configured."""
    return make_settings(
        database_url,
        rollout_worker_enabled=True,
        rollout_tick_seconds=0.3,
        device_poll_interval_seconds=1,
        device_active_poll_interval_seconds=1,
        # Short: each rollout waits one flush for the devices' polls to be on record.
        device_last_seen_flush_seconds=0.3,
        registries={real_registry.host: real_registry.credentials()},
    )


def server_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite unless the test names ``postgresql`` (``parametrize("server", …, indirect=True)``)."""
    return fresh_database_url(request, getattr(request, "param", "sqlite"), tmp_path)


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tmp_path: Path, real_registry: RealRegistry
) -> Iterator[Server]:
    settings = engine_settings(server_database_url(request, tmp_path), real_registry)
    token = asyncio.run(prepare(settings))
    app = create_app(settings)
    seen: list[tuple[str, int]] = []

    @app.middleware("http")
    async def _record(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        seen.append((f"{request.method} {request.url.path}", response.status_code))
        return response

    with (
        serving(app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
    ):
        yield Server(url, token, settings, http, seen)


@dataclass
class Fleet:
    engine: DockerEngine
    server: Server
    registry: RealRegistry
    images: dict[str, TestImage]
    workdir: Path
    docker_config: Path
    image_id: int = 0
    agents: dict[str, Any] = field(default_factory=dict)  # uuid → (Agent, stop, thread)

    def options(self, uuid: str, key: Path, lock: Path | None = None) -> Any:
        from tagwarden_agent.agent import Options

        return Options(
            server=self.server.url,
            device=uuid,
            key=key.read_text().strip(),
            state_dir=self.workdir / uuid,
            lock_file=lock or self.workdir / f"{uuid}.lock",
            settle_seconds=1.0,
            health_timeout=20.0,
        )

    def start_agent(self, uuid: str, key: Path, lock: Path | None = None) -> Any:
        from tagwarden_agent.agent import Agent
        from tagwarden_agent.engine import Engine

        engine = Engine(uuid, docker_config=self.docker_config, base_url=self.engine.host)
        agent = Agent(self.options(uuid, key, lock), engine)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        self.agents[uuid] = (agent, stop, thread)
        return agent

    def stop_agents(self) -> None:
        for agent, stop, thread in self.agents.values():
            stop.set()
            thread.join(timeout=60)
            agent.close()
        self.agents.clear()

    def containers(self, uuid: str) -> list[Any]:
        client = self.engine.client()
        try:
            # A container the agent removes between the list and its inspect is not a failure.
            found = client.containers.list(
                all=True, filters={"label": f"io.tagwarden.device={uuid}"}, ignore_removed=True
            )
            return list(found)
        finally:
            client.close()

    def running(self, uuid: str) -> tuple[str | None, str | None]:
        """(digest, health) of the device's one running container."""
        found = [c for c in self.containers(uuid) if c.status == "running"]
        if len(found) != 1:
            return None, None
        state = found[0].attrs["State"]
        return found[0].labels["io.tagwarden.digest"], (state.get("Health") or {}).get("Status")

    def activate(self, version: str) -> None:
        """Activate a tag the way processing an approval does (the monitor path is the happy
        path's; the failure tests need a given bad tag active, nothing more)."""
        from tagwarden.catalogue.models import ImageTag
        from tagwarden.db import make_engine, make_sessionmaker

        async def run() -> None:
            engine = make_engine(self.server.settings.database_url)
            try:
                async with make_sessionmaker(engine)() as session, session.begin():
                    session.add(
                        ImageTag(
                            image_id=self.image_id,
                            tag=version,
                            architecture="amd64",
                            digest=self.images[version].digest,
                            metadata_={"architectures": ["amd64"], "source": "test"},
                        )
                    )
            finally:
                await engine.dispose()

        asyncio.run(run())

    def rollout(self, version: str, devices: list[str], **options: Any) -> dict[str, Any]:
        # A device busy with a switch does not poll; the planner calls one silent for three
        # poll intervals (1 s here) offline. So: a poll of each since now, and its flush.
        mark = len(self.server.requests)

        def polled() -> bool:
            paths = {r for r, _ in self.server.requests[mark:]}
            return all(f"GET /api/v1/device/{d}/state" in paths for d in devices)

        wait_for("a poll of every device", polled, 30)
        time.sleep(self.server.settings.device_last_seen_flush_seconds + 0.2)
        body = {
            "image_id": self.image_id,
            "tag": version,
            "devices": devices,
            "app": APP,
            "strategy": "canary",
            "options": {"canary_count": 1, "batch_size": 1, "bake_seconds": 0,
                        "health_timeout": 60} | options,
        }  # fmt: skip
        created: dict[str, Any] = self.server.ok("POST", "/api/v1/rollouts", json=body)
        return created

    def settled(self, rollout_id: int) -> dict[str, Any]:
        def check() -> Any:
            body = self.server.ok("GET", f"/api/v1/rollouts/{rollout_id}")
            return body if body["status"] not in ("pending", "running") else None

        settled: dict[str, Any] = wait_for(f"rollout {rollout_id} to settle", check, 90)
        return settled

    def reported(self, uuid: str) -> dict[str, Any]:
        body = self.server.ok("GET", f"/api/v1/devices/{uuid}")
        reported: dict[str, Any] = body["apps"][APP]["reported"]
        return reported


@pytest.fixture
def agent_world(
    docker_engine: DockerEngine, test_images: dict[str, TestImage]
) -> tuple[DockerEngine, dict[str, TestImage]]:
    """The engine the fleet's agents drive and the images pushed for it, by version
    (test_agent_podman.py puts Podman's here)."""
    return docker_engine, test_images


@pytest.fixture
def fleet(
    agent_world: tuple[DockerEngine, dict[str, TestImage]],
    real_registry: RealRegistry,
    server: Server,
    tmp_path: Path,
) -> Iterator[Fleet]:
    agent_engine, agent_images = agent_world
    namespace, name = agent_images["v2"].repository.split("/", 1)[1].split("/")
    image = server.ok(
        "POST",
        "/api/v1/images",
        json={
            "image_name": name,
            "namespace": namespace,
            "registry": real_registry.host,
            "watch_for_updates": True,
            "tag_include": "^v2$",
        },
    )
    fleet = Fleet(
        agent_engine,
        server,
        real_registry,
        agent_images,
        tmp_path,
        _docker_config(tmp_path, real_registry),
        image_id=image["id"],
    )
    yield fleet
    fleet.stop_agents()
    client = agent_engine.client()
    try:  # the engine outlives the test: leave nothing of this test's devices behind
        for container in client.containers.list(all=True, filters={"label": "io.tagwarden.app"}):
            container.remove(force=True)
    finally:
        client.close()


def discover_and_approve_v2(fleet: Fleet) -> None:
    summary = fleet.server.ok("POST", "/api/v1/images/monitor/trigger")
    assert summary["requests_created"] >= 1, summary
    pending = fleet.server.ok("GET", "/api/v1/images/approvals", params={"status": "pending"})
    [request] = [r for r in pending["items"] if r["tag_name"] == "v2"]
    assert request["digest"] == fleet.images["v2"].digest
    fleet.server.ok("POST", f"/api/v1/images/approvals/{request['id']}/approve")


def healthy_on_v2(fleet: Fleet, devices: list[str]) -> dict[str, Any]:
    """The happy path: discovery → approval → a canary rollout to ``devices``, completed."""
    discover_and_approve_v2(fleet)
    created = fleet.rollout("v2", devices)
    done = fleet.settled(created["id"])
    assert done["status"] == "completed", done
    return done


def healthy_app_on_v2(fleet: Fleet, config: dict[str, Any], devices: tuple[str, ...]) -> str:
    """The app defined with ``config``, an agent per device, the happy path to v2; v2's digest,
    which each device runs healthy, alone, and reports so."""
    fleet.server.ok(
        "PUT", f"/api/v1/apps/{APP}", json={"image_id": fleet.image_id, "config": config}
    )
    keys = {u: fleet.server.register(u, fleet.workdir) for u in devices}
    for uuid, key in keys.items():
        fleet.start_agent(uuid, key)
    healthy_on_v2(fleet, list(keys))
    v2 = fleet.images["v2"].digest
    for uuid in keys:
        assert fleet.running(uuid) == (v2, "healthy")
        assert len(fleet.containers(uuid)) == 1  # a first install keeps no previous
        reported = fleet.reported(uuid)
        assert (reported["status"], reported["health"]) == ("running", "healthy")
        assert reported["digest"] == v2
    return v2


BOTH_DATABASES = pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)


@BOTH_DATABASES
def test_a_canary_rollout_of_a_discovered_approved_tag_runs_it_on_real_containers(
    fleet: Fleet,
) -> None:
    # The app's definition on the server: the agent maps it to the Engine API.
    config = {
        "network_mode": "none",
        "restart": "no",
        "env": {"GREETING": "hello"},
        "labels": {"team": "edge"},
        "healthcheck": {"test": ["CMD", "/bin/busybox", "test", "-f", "/www/ok"],
                        "interval_seconds": 0.2, "timeout_seconds": 2, "retries": 2},
    }  # fmt: skip
    v2 = healthy_app_on_v2(fleet, config, ("dev-a", "dev-b"))
    [container] = fleet.containers("dev-a")
    assert "GREETING=hello" in container.attrs["Config"]["Env"]
    assert container.labels["team"] == "edge"
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert container.attrs["Config"]["Healthcheck"]["Interval"] == 200_000_000
    # The pulled image is the target's, by repo digest.
    client = fleet.engine.client()
    try:
        image = client.images.get(f"{fleet.images['v2'].repository}@{v2}")
        assert f"{fleet.images['v2'].repository}@{v2}" in image.attrs["RepoDigests"]
    finally:
        client.close()

    # At rest, polls are answered 304 (the rollout's end changes the state once more: the
    # devices leave the active poll interval; after that, nothing changes).
    def at_rest() -> bool:
        polls = [s for r, s in fleet.server.requests if r.startswith("GET /api/v1/device/")]
        return len(polls) >= 6 and set(polls[-6:]) == {304}

    wait_for("six polls in a row answered 304", at_rest, 30)
    reports = [r for r, _ in fleet.server.requests[-6:] if r.startswith("PATCH")]
    assert not reports  # and nothing to say


@BOTH_DATABASES
def test_an_unhealthy_update_is_undone_by_the_agent_and_the_rollout_pauses(
    fleet: Fleet,
) -> None:
    keys = {u: fleet.server.register(u, fleet.workdir) for u in ("unh-a", "unh-b")}
    for uuid, key in keys.items():
        fleet.start_agent(uuid, key)
    healthy_on_v2(fleet, list(keys))
    fleet.activate("v3")
    created = fleet.rollout("v3", list(keys), on_failure="pause")
    done = fleet.settled(created["id"])
    assert done["status"] == "paused", done
    [canary] = [d for d in done["devices"] if d["state"] == "failed"]
    assert canary["failure_reason"] == "unhealthy"
    v2 = fleet.images["v2"].digest
    for uuid in keys:  # the canary restored v2 itself; the other never left it
        wait_for(f"{uuid} healthy on v2", lambda u=uuid: fleet.running(u) == (v2, "healthy"))
        digests = [c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid)]
        assert digests == [v2]  # one container per app, nothing of v3
    reported = fleet.reported(canary["device"])
    assert (reported["status"], reported["reason"]) == ("failed", "unhealthy")
    assert reported["digest"] == v2  # what runs now


def crash_loop_undone(fleet: Fleet, uuid: str) -> dict[str, Any]:
    """One device on v2, then a rollout of v4 (exits at once): ``crashloop``, v2 healthy again
    and alone, no image of v4 left. The settled rollout."""
    key = fleet.server.register(uuid, fleet.workdir)
    fleet.start_agent(uuid, key)
    healthy_on_v2(fleet, [uuid])
    v2 = fleet.images["v2"].digest
    fleet.activate("v4")
    done = fleet.settled(fleet.rollout("v4", [uuid])["id"])
    assert done["devices"][0]["failure_reason"] == "crashloop", done
    # Restarted, the restored container runs its healthcheck afresh.
    wait_for("v2 healthy again", lambda: fleet.running(uuid) == (v2, "healthy"))
    assert len(fleet.containers(uuid)) == 1  # restored; nothing of v4 is left
    client = fleet.engine.client()
    try:
        v4 = f"{fleet.images['v4'].repository}@{fleet.images['v4'].digest}"
        assert not [i for i in client.images.list() if v4 in i.attrs.get("RepoDigests", [])]
    finally:
        client.close()
    return done


def test_a_crash_loop_and_a_digest_gone_from_the_registry_are_reported_and_undone(
    fleet: Fleet,
) -> None:
    done = crash_loop_undone(fleet, "crash-a")
    v2 = fleet.images["v2"].digest
    fleet.server.ok("POST", f"/api/v1/rollouts/{done['id']}/abort")

    # v1 deleted from the registry before anyone pulled it: pull_failed.
    repository = fleet.images["v1"].repository.split("/", 1)[1]
    http = httpx.Client(auth=(fleet.registry.username, fleet.registry.password))
    gone = http.delete(
        f"{fleet.registry.url}/v2/{repository}/manifests/{fleet.images['v1'].digest}"
    )
    http.close()
    assert gone.status_code == 202, gone.text
    fleet.activate("v1")
    done = fleet.settled(fleet.rollout("v1", ["crash-a"])["id"])
    assert done["devices"][0]["failure_reason"] == "pull_failed", done
    assert fleet.running("crash-a") == (v2, "healthy")


def test_update_lock_prepulls_and_switches_once_the_lock_is_gone(fleet: Fleet) -> None:
    key = fleet.server.register("lock-a", fleet.workdir)
    lock = fleet.workdir / "updates.lock"
    fleet.start_agent("lock-a", key, lock)
    healthy_on_v2(fleet, ["lock-a"])
    lock.write_text("")
    # A new target while locked: v2's running container stays, v3 is pre-pulled only.
    fleet.activate("v3")
    created = fleet.rollout("v3", ["lock-a"], health_timeout=120)
    wait_for(
        "the locked report",
        lambda: fleet.reported("lock-a").get("message") == "update locked",
    )
    reported = fleet.reported("lock-a")
    assert reported["status"] == "downloading"
    v2, v3 = fleet.images["v2"].digest, fleet.images["v3"].digest
    assert fleet.running("lock-a") == (v2, "healthy")
    client = fleet.engine.client()
    try:
        client.images.get(f"{fleet.images['v3'].repository}@{v3}")  # pre-pulled
    finally:
        client.close()
    lock.unlink()
    done = fleet.settled(created["id"])
    assert done["devices"][0]["failure_reason"] == "unhealthy"  # it did switch, and undid it
    wait_for("v2 healthy again", lambda: fleet.running("lock-a") == (v2, "healthy"))


def test_kill_9_during_a_switch_then_a_restart_converges_to_one_container(
    fleet: Fleet,
) -> None:
    uuid = "kill-a"
    key = fleet.server.register(uuid, fleet.workdir)
    env = os.environ | {
        "DOCKER_HOST": fleet.engine.host,
        "TAGWARDEN_AGENT_SERVER": fleet.server.url,
        "TAGWARDEN_AGENT_DEVICE": uuid,
        "TAGWARDEN_AGENT_KEY_FILE": str(key),
        "TAGWARDEN_AGENT_STATE_DIR": str(fleet.workdir / uuid),
        "TAGWARDEN_AGENT_LOCK_FILE": str(fleet.workdir / "none.lock"),
        "TAGWARDEN_AGENT_DOCKER_CONFIG": str(fleet.docker_config),
        "TAGWARDEN_AGENT_SETTLE_SECONDS": "1",
        "TAGWARDEN_AGENT_HEALTH_TIMEOUT": "20",
    }
    command = [sys.executable, "-m", "tagwarden_agent.cli", "run"]
    log = (fleet.workdir / "agent.log").open("wb")
    agent = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        discover_and_approve_v2(fleet)
        fleet.rollout("v2", [uuid])
        # Killed as soon as the new container exists, before it is judged healthy.
        wait_for("the switch to start", lambda: fleet.containers(uuid), 60)
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        agent = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        v2 = fleet.images["v2"].digest
        wait_for("v2 healthy", lambda: fleet.running(uuid) == (v2, "healthy"), 60)
        wait_for("one container", lambda: len(fleet.containers(uuid)) == 1, 30)
        wait_for("the report", lambda: fleet.reported(uuid)["status"] == "running", 30)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
        log.close()
