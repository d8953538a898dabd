"""The agent end to end on Podman: a real ``podman system service``, the real registry, the real
server (issue 11). The world is test_agent_engine.py's (its ``fleet``), with Podman's
Docker-compatible socket as the engine (tests/integration/podman_engine.py) and images Podman
built. Without systemd Podman runs no healthchecks of its own: every health this engine shows
comes from a check the agent triggered. SQLite only, as in test_agent_engine.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.docker_engine import DockerEngine, TestImage
from tests.integration.podman_engine import podman_engine, podman_images
from tests.integration.test_agent_engine import APP, Fleet, fleet, healthy_on_v2, server, wait_for

__all__ = ["fleet", "podman_engine", "podman_images", "server"]  # fixtures

pytestmark = [pytest.mark.registry, pytest.mark.podman]

HEALTH_VOLUME = "tw-podman-health"


@pytest.fixture
def agent_engine(podman_engine: DockerEngine) -> DockerEngine:
    return podman_engine


@pytest.fixture
def agent_images(podman_images: dict[str, TestImage]) -> dict[str, TestImage]:
    return podman_images


@pytest.fixture
def health_volume(agent_engine: DockerEngine) -> Iterator[Path]:
    """A named volume holding the file the app's healthcheck tests: the test takes it away and
    puts it back from the host, with no exec into the container. Asked for before ``fleet``, it
    is removed after the fleet's containers are."""
    client = agent_engine.client()
    try:
        volume = client.volumes.create(HEALTH_VOLUME)
        data = Path(volume.attrs["Mountpoint"])
        (data / "ok").write_text("ok\n")
        yield data
        volume.remove()
    finally:
        client.close()


def _last_check(fleet: Fleet, uuid: str) -> str | None:
    """When the device's running container's last healthcheck started (Podman's own record)."""
    [container] = [c for c in fleet.containers(uuid) if c.status == "running"]
    log = (container.attrs["State"].get("Health") or {}).get("Log") or []
    return str(log[-1]["Start"]) if log else None


def _reported(fleet: Fleet, uuid: str) -> tuple[Any, Any, Any]:
    reported = fleet.reported(uuid)
    return reported["status"], reported["health"], reported["digest"]


def test_an_update_on_podman_is_healthy_by_the_agents_checks_and_stays_current_at_rest(
    health_volume: Path, fleet: Fleet
) -> None:
    volume = health_volume
    config = {
        "network_mode": "none",
        "restart": "no",
        "volumes": [f"{HEALTH_VOLUME}:/state"],
        "healthcheck": {"test": ["CMD", "/bin/busybox", "test", "-f", "/state/ok"],
                        "interval_seconds": 0.2, "timeout_seconds": 2, "retries": 1},
    }  # fmt: skip
    fleet.server.ok(
        "PUT", f"/api/v1/apps/{APP}", json={"image_id": fleet.image_id, "config": config}
    )
    keys = {u: fleet.server.register(u, fleet.workdir) for u in ("pod-a", "pod-b")}
    for uuid, key in keys.items():
        fleet.start_agent(uuid, key)
    healthy_on_v2(fleet, list(keys))
    v2 = fleet.images["v2"].digest
    for uuid in keys:
        assert fleet.running(uuid) == (v2, "healthy")
        assert len(fleet.containers(uuid)) == 1
        assert _reported(fleet, uuid) == ("running", "healthy", v2)
    [container] = fleet.containers("pod-a")
    assert container.attrs["Config"]["Healthcheck"]["Interval"] == 200_000_000

    # At rest the agent keeps running the check (once a poll here): Podman's record moves on.
    first = _last_check(fleet, "pod-a")
    assert first is not None
    wait_for("a check at rest", lambda: _last_check(fleet, "pod-a") != first, 10)

    # The health file gone: the running container is reported unhealthy (and not restarted:
    # at rest the agent reports, the server decides); back: healthy again.
    (volume / "ok").unlink()
    for uuid in keys:
        wait_for(
            f"{uuid} reported unhealthy",
            lambda u=uuid: _reported(fleet, u) == ("running", "unhealthy", v2),
            20,
        )
        assert fleet.running(uuid) == (v2, "unhealthy")
    (volume / "ok").write_text("ok\n")
    for uuid in keys:
        wait_for(
            f"{uuid} reported healthy again",
            lambda u=uuid: _reported(fleet, u) == ("running", "healthy", v2),
            20,
        )
        assert fleet.running(uuid) == (v2, "healthy")


def test_an_unhealthy_update_on_podman_is_undone_and_v2_runs_healthy_again(fleet: Fleet) -> None:
    keys = {u: fleet.server.register(u, fleet.workdir) for u in ("punh-a", "punh-b")}
    for uuid, key in keys.items():
        fleet.start_agent(uuid, key)
    healthy_on_v2(fleet, list(keys))
    fleet.activate("v3")
    done = fleet.settled(fleet.rollout("v3", list(keys), on_failure="pause")["id"])
    assert done["status"] == "paused", done
    [canary] = [d for d in done["devices"] if d["state"] == "failed"]
    assert canary["failure_reason"] == "unhealthy"
    v2 = fleet.images["v2"].digest
    for uuid in keys:  # the canary restored v2, whose checks start afresh and are run again
        wait_for(f"{uuid} healthy on v2", lambda u=uuid: fleet.running(u) == (v2, "healthy"))
        digests = [c.labels["io.tagwarden.digest"] for c in fleet.containers(uuid)]
        assert digests == [v2]  # one container per app, nothing of v3
    reported = fleet.reported(canary["device"])
    assert (reported["status"], reported["reason"], reported["digest"]) == (
        "failed",
        "unhealthy",
        v2,
    )


def test_a_crash_loop_on_podman_is_reported_and_undone(fleet: Fleet) -> None:
    key = fleet.server.register("pcrash-a", fleet.workdir)
    fleet.start_agent("pcrash-a", key)
    healthy_on_v2(fleet, ["pcrash-a"])
    v2 = fleet.images["v2"].digest
    fleet.activate("v4")
    done = fleet.settled(fleet.rollout("v4", ["pcrash-a"])["id"])
    assert done["devices"][0]["failure_reason"] == "crashloop", done
    wait_for("v2 healthy again", lambda: fleet.running("pcrash-a") == (v2, "healthy"))
    assert len(fleet.containers("pcrash-a")) == 1
    reported = fleet.reported("pcrash-a")
    assert (reported["status"], reported["reason"], reported["digest"]) == (
        "failed",
        "crashloop",
        v2,
    )
    client = fleet.engine.client()
    try:  # none of the failed digest is left
        v4 = f"{fleet.images['v4'].repository}@{fleet.images['v4'].digest}"
        assert not [i for i in client.images.list() if v4 in i.attrs.get("RepoDigests", [])]
    finally:
        client.close()
