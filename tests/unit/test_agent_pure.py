"""The agent's pure parts: Compose config → Docker API, the state file, the poll backoff."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tagwarden_agent import state as state_file
from tagwarden_agent.backoff import MAX_BACKOFF_SECONDS, next_delay
from tagwarden_agent.config_map import ConfigError, container_options
from tagwarden_agent.engine import failure_reason, healthcheck_interval, split_reference

OWN = {"io.tagwarden.device": "d1", "io.tagwarden.app": "web"}


def test_a_compose_config_maps_to_docker_api_options() -> None:
    options = container_options(
        {
            "command": ["redis-server", "--save", ""],
            "env": {"A": "1"},
            "ports": ["8080:80", "127.0.0.1:5353:53/udp"],
            "volumes": ["data:/data", "/srv/conf:/etc/app:ro"],
            "restart": "unless-stopped",
            "network_mode": "host",
            "labels": {"team": "edge"},
            "healthcheck": {
                "test": ["CMD", "true"],
                "interval_seconds": 0.5,
                "timeout_seconds": 2,
                "retries": 3,
            },
        },
        OWN,
    )
    assert options == {
        "command": ["redis-server", "--save", ""],
        "environment": {"A": "1"},
        "ports": {"80/tcp": 8080, "53/udp": ("127.0.0.1", 5353)},
        "volumes": {
            "data": {"bind": "/data", "mode": "rw"},
            "/srv/conf": {"bind": "/etc/app", "mode": "ro"},
        },
        "restart_policy": {"Name": "unless-stopped"},
        "network_mode": "host",
        "labels": {"team": "edge"} | OWN,
        # The Engine API's durations are nanoseconds.
        "healthcheck": {"test": ["CMD", "true"], "interval": 500_000_000,
                        "timeout": 2_000_000_000, "retries": 3},
    }  # fmt: skip


def test_an_empty_config_runs_the_image_as_it_is() -> None:
    assert container_options({}, OWN) == {"labels": OWN}
    assert container_options({"restart": "no"}, OWN)["restart_policy"] == {"Name": ""}


@pytest.mark.parametrize(
    "config",
    [
        {"privileged": True},  # a key the agent does not know: refused, not ignored
        {"labels": {"io.tagwarden.device": "other"}},
        {"restart": "sometimes"},
        {"network_mode": "container:x"},
        {"ports": ["80"]},
        {"volumes": ["data"]},
        {"healthcheck": {"test": ["CMD", "true"], "interval_seconds": 0}},
        {"command": "sh -c true"},
    ],
)
def test_a_config_the_agent_does_not_understand_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        container_options(config, OWN)


def test_the_state_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    assert state_file.load(tmp_path) == state_file.AgentState()
    memory = state_file.AgentState(etag='"3.60"', version=3, target={"apps": {}})
    memory.app("web").switching_to = "sha256:" + "a" * 64
    memory.app("web").pulled.append("r@sha256:" + "b" * 64)
    state_file.save(tmp_path, memory)
    assert state_file.load(tmp_path) == memory
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no tmp file left
    assert json.loads((tmp_path / "state.json").read_text())["etag"] == '"3.60"'
    (tmp_path / "state.json").write_text("{torn")
    assert state_file.load(tmp_path) == state_file.AgentState()  # converge from the engine


def test_polls_are_jittered_and_back_off_exponentially_up_to_a_cap() -> None:
    rng = random.Random(1)
    delays = [next_delay(60, 0, rng) for _ in range(200)]
    assert 54 <= min(delays) < max(delays) <= 66
    assert 0.5 <= next_delay(60, 1, rng) <= 1
    assert 4 <= next_delay(60, 4, rng) <= 8
    # Capped, and still backing off at the cap (not a constant).
    assert MAX_BACKOFF_SECONDS / 2 <= next_delay(60, 50, rng) <= MAX_BACKOFF_SECONDS


def test_a_pinned_reference_splits_into_name_and_digest() -> None:
    digest = "sha256:" + "c" * 64
    assert split_reference(f"127.0.0.1:5000/demo/app:1.0@{digest}") == (
        "127.0.0.1:5000/demo/app",
        digest,
    )
    assert split_reference(f"redis@{digest}") == ("redis", digest)


@pytest.mark.parametrize(
    ("error", "default", "reason"),
    [
        ("failed to register layer: write /x: no space left on device", "pull_failed", "disk_full"),
        ("Error response from daemon: No Space Left On Device", "other", "disk_full"),
        ("manifest unknown", "pull_failed", "pull_failed"),
        ("conflict: name in use", "other", "other"),
    ],
)
def test_no_space_left_on_device_is_disk_full_whatever_step_said_it(
    error: str, default: str, reason: str
) -> None:
    assert failure_reason(Exception(error), default) == reason


@pytest.mark.parametrize(
    ("config", "seconds"),
    [
        ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 200_000_000}}, 0.2),
        ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 0}}, 30.0),  # the engines' default
        ({"Healthcheck": {"Test": ["CMD", "true"]}}, 30.0),
        ({}, 30.0),
    ],
)
def test_a_triggered_healthcheck_waits_the_containers_own_interval(
    config: dict[str, Any], seconds: float
) -> None:
    container: Any = SimpleNamespace(attrs={"Config": config})
    assert healthcheck_interval(container) == seconds
