"""The agent end to end on Podman: a real ``podman system service``, the real registry, the real
server. The world is test_agent_engine.py's (its ``fleet``), with Podman's
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
from tests.integration.test_agent_engine import (
    Fleet,
    crash_loop_undone,
    fleet,
    healthy_app_on_v2,
    healthy_on_v2,
    server,
    wait_for,
)

__all__ = ["fleet", "podman_engine", "podman_images", "server"]  # fixtures

pytestmark = [pytest.mark.registry, pytest.mark.podman]

HEALTH_VOLUME = "tw-podman-health"


@pytest.fixture
def agent_world(podman_engine: DockerEngine, podman_images: dict[str, TestImage]) -> Any:
    return podman_engine, podman_images


@pytest.fixture
def health_volume(podman_engine: DockerEngine) -> Iterator[Path]:
    """A named volume holding the file the app's healthcheck tests: the test takes it away and
    puts it back from the host, with no exec into the container. Asked for before ``fleet``, it
    is removed after the fleet's containers are."""
    client = podman_engine.client()
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


def _each_reports(fleet: Fleet, devices: tuple[str, ...], digest: str, health: str) -> None:
    """Every device reports ``digest`` running with ``health``, which is what Podman shows."""
    for uuid in devices:
        wait_for(
            f"{uuid} reported {health}",
            lambda u=uuid: _reported(fleet, u) == ("running", health, digest),
            20,
        )
        assert fleet.running(uuid) == (digest, health)


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
    keys = ("pod-a", "pod-b")
    v2 = healthy_app_on_v2(fleet, config, keys)
    [container] = fleet.containers("pod-a")
    assert container.attrs["Config"]["Healthcheck"]["Interval"] == 200_000_000

    # At rest the agent keeps running the check (once a poll here): Podman's record moves on.
    first = _last_check(fleet, "pod-a")
    assert first is not None
    wait_for("a check at rest", lambda: _last_check(fleet, "pod-a") != first, 10)

    # The health file gone: the running container is reported unhealthy (and not restarted:
    # at rest the agent reports, the server decides); back: healthy again.
    (volume / "ok").unlink()
    _each_reports(fleet, keys, v2, "unhealthy")
    (volume / "ok").write_text("ok\n")
    _each_reports(fleet, keys, v2, "healthy")


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
    crash_loop_undone(fleet, "pcrash-a")
    reported = fleet.reported("pcrash-a")
    assert (reported["status"], reported["reason"], reported["digest"]) == (
        "failed",
        "crashloop",
        fleet.images["v2"].digest,
    )
