"""The agent's crash safety, end to end: ``kill -9`` at each step of a switch, an engine that
goes away, and a failed digest asked for again. Same setting as test_agent_engine.py: a real
Docker engine, the real registry, the real server.

The kill points are hit deterministically: ``TAGWARDEN_AGENT_CRASH_AT=<step>`` makes the agent
SIGKILL itself at that step (tagwarden_agent.crash); the restarted agent runs without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.docker_engine import (
    DockerEngine,
    TestImage,
    build_and_push,
    docker_engine,
    start_engine,
    test_images,
)
from tests.integration.real_registry import RealRegistry
from tests.integration.test_agent_engine import (
    APP,
    REPOSITORY,
    Fleet,
    agent_world,
    fleet,
    healthy_on_v2,
    server,
    wait_for,
)

__all__ = ["agent_world", "docker_engine", "fleet", "server", "test_images"]  # fixtures

pytestmark = [pytest.mark.registry, pytest.mark.docker]

OLD, NEW = "v8", "v9"  # good images: the update every kill test interrupts
STEPS = ("pulling", "stopped", "started", "healthy")  # tagwarden_agent.crash.STEPS, in order


@pytest.fixture(scope="module")
def switch_images(docker_engine: DockerEngine, real_registry: RealRegistry) -> dict[str, TestImage]:
    return {v: build_and_push(docker_engine, real_registry, REPOSITORY, v) for v in (OLD, NEW)}


def _agent(fleet: Fleet, uuid: str, key: Path, crash_at: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGWARDEN_AGENT_")}
    env |= {
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
    if crash_at:
        env["TAGWARDEN_AGENT_CRASH_AT"] = crash_at
    log = (fleet.workdir / "agent.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tagwarden_agent.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()  # the child has its own descriptor


def _stop(agent: Any) -> None:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=10)


def _forget(fleet: Fleet, version: str) -> None:
    """Remove ``version`` from the shared engine: the agent must pull it (the ``pulling``
    point is passed only by a pull)."""
    image = fleet.images[version]
    client = fleet.engine.client()
    try:
        with suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{image.repository}@{image.digest}", force=True)
    finally:
        client.close()


def _converged(fleet: Fleet, uuid: str) -> None:
    """The target runs, healthy; one previous container at most, stopped, and nothing else of
    this device's; the state file says what the engine shows."""
    old, new = fleet.images[OLD].digest, fleet.images[NEW].digest
    main_name = f"tw-{uuid}-{APP}"
    containers = {c.name: c for c in fleet.containers(uuid)}
    assert set(containers) <= {main_name, main_name + "-previous"}, sorted(containers)  # no orphans
    main = containers[main_name]
    assert (main.status, main.labels["io.tagwarden.digest"]) == ("running", new)
    previous = containers.get(main_name + "-previous")
    if previous is not None:
        assert (previous.status, previous.labels["io.tagwarden.digest"]) == ("exited", old)
    state = json.loads((fleet.workdir / uuid / "state.json").read_text())
    memory = state["apps"][APP]
    assert memory["digest"] == new
    assert memory["switching_to"] is None
    assert memory["failed_digest"] is None
    assert memory["previous_id"] == (previous.id if previous is not None else None)
    assert f"{fleet.images[NEW].repository}@{new}" in memory["pulled"]
    assert state["target"]["apps"][APP]["digest"] == new
    assert [p for p in (fleet.workdir / uuid).iterdir() if p.name != "state.json"] == []


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_each_step_of_an_update_then_a_restart_converges_on_the_target(
    fleet: Fleet, switch_images: dict[str, TestImage], step: str
) -> None:
    fleet.images = {**fleet.images, **switch_images}
    uuid = f"kill-{step}"
    key = fleet.server.register(uuid, fleet.workdir)
    agent = _agent(fleet, uuid, key)
    try:
        fleet.activate(OLD)
        done = fleet.settled(fleet.rollout(OLD, [uuid])["id"])
        assert done["status"] == "completed", done
        _stop(agent)
        _forget(fleet, NEW)

        agent = _agent(fleet, uuid, key, crash_at=step)
        fleet.activate(NEW)
        created = fleet.rollout(NEW, [uuid])
        assert agent.wait(timeout=60) == -signal.SIGKILL  # it did reach the step, and died there
        agent = _agent(fleet, uuid, key)  # restarted, as systemd does
        done = fleet.settled(created["id"])
        assert done["status"] == "completed", done
        wait_for("the new image healthy", lambda: fleet.running(uuid)[1] == "healthy", 30)
        _converged(fleet, uuid)
        reported = fleet.reported(uuid)
        assert (reported["status"], reported["health"]) == ("running", "healthy")
        assert reported["digest"] == fleet.images[NEW].digest
    finally:
        _stop(agent)


def test_a_digest_that_failed_is_tried_again_when_the_target_names_it_again(
    fleet: Fleet,
) -> None:
    uuid = "again-a"
    agent = fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    healthy_on_v2(fleet, [uuid])
    v2, v3 = fleet.images["v2"].digest, fleet.images["v3"].digest
    fleet.activate("v3")
    first = fleet.settled(fleet.rollout("v3", [uuid], on_failure="pause")["id"])
    assert first["status"] == "paused", first
    assert first["devices"][0]["failure_reason"] == "unhealthy"
    assert agent.state.app(APP).failed_digest == v3  # its target stays v3: not retried

    # The server rolls the device back to v2: the agent is on its target again…
    fleet.server.ok("POST", f"/api/v1/rollouts/{first['id']}/rollback")
    wait_for("v2 reported again", lambda: fleet.reported(uuid).get("status") == "running", 30)
    assert fleet.running(uuid) == (v2, "healthy")
    # …and a new rollout of the digest that failed here is tried, not ignored: the device
    # fails it again for the image's own reason, well before the rollout's health timeout.
    second = fleet.settled(fleet.rollout("v3", [uuid], health_timeout=30)["id"])
    assert second["devices"][0]["failure_reason"] == "unhealthy", second
    wait_for("v2 healthy again", lambda: fleet.running(uuid) == (v2, "healthy"))
    assert [c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid)] == [v2]


@pytest.fixture
def own_engine(real_registry: RealRegistry) -> Iterator[tuple[Path, ExitStack]]:
    """A private dockerd of this test's own, which the test stops and starts again on the same
    socket: the session's engine runs the other tests' containers."""
    workdir = Path(tempfile.mkdtemp(prefix="twd-gone-", dir="/tmp"))
    stack = ExitStack()
    try:
        yield workdir, stack
    finally:
        stack.close()


def test_the_engine_gone_and_back_the_agent_keeps_looping_and_reinstalls_the_target(
    fleet: Fleet,
    real_registry: RealRegistry,
    own_engine: tuple[Path, ExitStack],
    caplog: pytest.LogCaptureFixture,
) -> None:
    workdir, stack = own_engine
    engine = stack.enter_context(start_engine(workdir, [real_registry.host]))
    fleet = dataclasses.replace(fleet, engine=engine)
    uuid = "gone-a"
    agent = fleet.start_agent(uuid, fleet.server.register(uuid, fleet.workdir))
    healthy_on_v2(fleet, [uuid])
    v2 = fleet.images["v2"].digest
    _, _, thread = fleet.agents[uuid]

    caplog.set_level(logging.WARNING, logger="tagwarden_agent")
    stack.close()  # dockerd stopped, its socket gone (and its containers with it)
    assert not (workdir / "docker.sock").exists()
    mark = len(fleet.server.requests)
    polled = f"GET /api/v1/device/{uuid}/state"
    wait_for(
        "three polls with the engine away",
        lambda: [r for r, _ in fleet.server.requests[mark:]].count(polled) >= 3,
        30,
    )
    assert thread.is_alive()  # the connection error was the loop's to take, not a crash
    assert agent.failures >= 1  # backing off
    assert any(r.getMessage().startswith("engine: ") for r in caplog.records)

    workdir.mkdir()
    engine = stack.enter_context(start_engine(workdir, [real_registry.host]))
    fleet = dataclasses.replace(fleet, engine=engine)
    # The same socket, an engine without the app: the agent installs its target again.
    wait_for("v2 running again, healthy", lambda: fleet.running(uuid) == (v2, "healthy"), 60)
    wait_for("the report", lambda: fleet.reported(uuid).get("digest") == v2, 30)
    assert thread.is_alive()
    assert len(fleet.containers(uuid)) == 1
    fleet.stop_agents()
