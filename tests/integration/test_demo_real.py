"""`tagwarden demo` says which mode it runs, and runs real containers when an engine answers:
a real Docker engine (the private dockerd of docker_engine.py), Debian's
docker-registry started by the demo itself, two real agents."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagwarden.cli.demo_real import choose_mode
from tagwarden.cli.main import app
from tests.integration.docker_engine import DockerEngine, docker_engine

__all__ = ["docker_engine"]  # a session fixture


def test_without_an_engine_the_demo_says_it_simulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    host, line = choose_mode(False)
    assert host is None
    assert (
        line
        == f"mode: simulated devices (no Docker engine answers at unix://{tmp_path}/nothing.sock)"
    )
    assert choose_mode(True) == (None, "mode: simulated devices (--simulated)")


@pytest.mark.registry
@pytest.mark.docker
def test_with_an_engine_the_demo_rolls_out_to_two_real_agents(
    docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    result = CliRunner().invoke(app, ["demo", "--exit-when-done"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"mode: real containers via {docker_engine.host}" in out
    assert "🐳 built 127.0.0.1:" in out
    assert "[ImageMonitor] Monitoring 5 images" in out
    assert "started 2 tagwarden-agent loops" in out
    assert "completed  batch 2/2  succeeded 2" in out
    assert "2 of 2 agents run 127.0.0.1:" in out
    assert "in real containers, healthy" in out
    client = docker_engine.client()
    try:  # the demo leaves nothing behind
        left = client.containers.list(all=True, filters={"label": "io.tagwarden.app"})
        assert [c.name for c in left if c.name.startswith("tw-demo-")] == []
    finally:
        client.close()
