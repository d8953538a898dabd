"""`tagwarden demo` on real containers, when a Docker engine answers.

Discovery still runs against the fake registry (offline), and one image more lives in a real
registry: Debian's ``docker-registry`` on loopback, holding a FROM-scratch busybox image built
through the engine (tagwarden.testing.images). Two ``tagwarden-agent`` loops (in this process)
run the approved tag in the engine, watched until healthy. Everything the demo starts (the
registry, the containers, the images) is removed at the end.

The Docker SDK and the agent are development installs, not the server's dependencies: they are
imported here only, and their absence means the simulated demo, with a message saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
REAL_NAMESPACE, REAL_NAME, REAL_TAG = "demo", "web", "1.0.0"
REAL_APP = "web"
AGENTS = 2


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def engine_answers(host: str) -> bool:
    """``/_ping`` answers OK: a Docker (or Podman-compatible) engine is there."""
    try:
        if host.startswith("unix://"):
            transport = httpx.HTTPTransport(uds=host.removeprefix("unix://"))
            with httpx.Client(transport=transport, base_url="http://docker", timeout=2) as http:
                return http.get("/_ping").status_code == 200
        if host.startswith("tcp://"):
            url = "http://" + host.removeprefix("tcp://")
            return httpx.get(f"{url}/_ping", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
    return False


def real_mode_missing() -> str | None:
    """Why the real mode cannot run, or None when it can."""
    from tagwarden.testing.images import BUSYBOX

    for module, hint in (("docker", "the Docker SDK"), ("tagwarden_agent", "tagwarden-agent")):
        try:
            __import__(module)
        except ImportError:
            return f"{hint} is not installed (make install installs both)"
    for path, package in ((REGISTRY_BINARY, "docker-registry"), (BUSYBOX, "busybox-static")):
        if not path.exists():
            return f"{path} is missing (apt-get install {package})"
    return None


def choose_mode(force_simulated: bool) -> tuple[str | None, str]:
    """(the engine's DOCKER_HOST or None, the line that says which mode the demo runs)."""
    host = docker_host()
    if force_simulated:
        return None, "mode: simulated devices (--simulated)"
    if not engine_answers(host):
        return None, f"mode: simulated devices (no Docker engine answers at {host})"
    missing = real_mode_missing()
    if missing is not None:
        return None, f"mode: simulated devices (a Docker engine answers at {host}, but {missing})"
    return host, f"mode: real containers via {host}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def local_registry(workdir: Path) -> Iterator[str]:
    """Debian's docker-registry on a loopback port, storage in ``workdir``; yields its host.
    No auth: it listens on 127.0.0.1 for this demo only. Engines treat 127.0.0.0/8 registries
    as plain HTTP by default."""
    port = _free_port()
    config = {  # JSON is YAML
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    (workdir / "config.yml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed binary and a config of ours
        [str(REGISTRY_BINARY), "serve", str(workdir / "config.yml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(workdir / 'registry.log').read_text()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not answer")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@dataclass
class RealFleet:
    """Two agents on one engine (distinct device uuids), in this process."""

    host: str
    workdir: Path
    devices: list[str] = field(default_factory=list)
    _loops: list[tuple[Any, threading.Event, threading.Thread]] = field(default_factory=list)

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def build_image(self, registry_host: str) -> tuple[str, str]:
        from tagwarden.testing.images import build_and_push

        name = f"{registry_host}/{REAL_NAMESPACE}/{REAL_NAME}"
        client = self.client()
        try:
            return name, build_and_push(client, name, REAL_TAG)
        finally:
            client.close()

    def start(self, server: str, keys: dict[str, str]) -> None:
        from tagwarden_agent.agent import Agent, Options
        from tagwarden_agent.engine import Engine

        self.workdir.mkdir(parents=True, exist_ok=True)
        docker_config = self.workdir / "docker-config.json"
        docker_config.write_text("{}")  # the demo registry asks for no credentials
        for uuid, key in keys.items():
            options = Options(
                server=server,
                device=uuid,
                key=key,
                state_dir=self.workdir / uuid,
                lock_file=self.workdir / f"{uuid}.lock",
                settle_seconds=1.0,
                health_timeout=60.0,
            )
            agent = Agent(options, Engine(uuid, docker_config=docker_config, base_url=self.host))
            stop = threading.Event()
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            thread.start()
            self._loops.append((agent, stop, thread))
            self.devices.append(uuid)

    def running(self) -> dict[str, tuple[str, str, str]]:
        """device → (container name, digest, health) of what runs."""
        client = self.client()
        found: dict[str, tuple[str, str, str]] = {}
        try:
            for uuid in self.devices:
                for c in client.containers.list(filters={"label": f"io.tagwarden.device={uuid}"}):
                    health = (c.attrs["State"].get("Health") or {}).get("Status", "none")
                    found[uuid] = (c.name, c.labels.get("io.tagwarden.digest", "-"), health)
        finally:
            client.close()
        return found

    def close(self, image: str | None) -> None:
        """Stop the agents, then remove what they ran and pulled: the demo leaves nothing."""
        for agent, stop, thread in self._loops:
            stop.set()
            thread.join(timeout=60)
            agent.close()
        client = self.client()
        try:
            for uuid in self.devices:
                for c in client.containers.list(
                    all=True, filters={"label": f"io.tagwarden.device={uuid}"}
                ):
                    c.remove(force=True)
            if image is not None:
                with contextlib.suppress(Exception):
                    client.images.remove(image, force=True)
        finally:
            client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
