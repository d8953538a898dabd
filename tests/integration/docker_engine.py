"""A real Docker engine for the agent's tests: a private ``dockerd`` and FROM-scratch images.

``docker_engine`` (session-scoped) starts Debian's ``dockerd`` with a ``daemon.json`` of its own
(../shared/RUNTIME_FACTS.md): data and exec roots, pidfile and socket in a temporary directory,
no bridge, no iptables, the test registry (``real_registry``) listed as insecure. It touches
nothing else on the machine and is stopped with SIGTERM, then whatever it left mounted under its
roots is unmounted.

``test_images`` builds the images the tests roll out, through the engine's ``/build`` API with a
tar context, ``FROM scratch`` around ``/bin/busybox`` (busybox-static), and pushes them to the
real registry: ``v1``/``v2`` good, ``v3`` without its health file (turns ``unhealthy``), ``v4``
whose command exits at once (a crash loop).

Without dockerd or busybox the fixtures skip with the install command, unless
``TAGWARDEN_REQUIRE_DOCKER=1`` (CI), where an engine that cannot start is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tagwarden.testing import images
from tests.integration.real_registry import RealRegistry

DOCKERD = Path("/usr/sbin/dockerd")
BUSYBOX = Path("/bin/busybox")
INSTALL_COMMAND = "apt-get install -y docker.io busybox-static"
REQUIRE_ENV = "TAGWARDEN_REQUIRE_DOCKER"
API_VERSION = "1.41"  # Debian's docker.io 20.10


@dataclass(frozen=True)
class DockerEngine:
    host: str  # DOCKER_HOST: unix://…/docker.sock
    root: Path

    def client(self):  # type: ignore[no-untyped-def]
        import docker

        return docker.DockerClient(base_url=self.host, version=API_VERSION, timeout=60)


@dataclass(frozen=True)
class TestImage:
    __test__ = False  # not a test class, despite its name

    version: str
    repository: str  # 127.0.0.1:<port>/agent/web
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.repository}:{self.version}@{self.digest}"


def unavailable_reason(
    paths: tuple[Path, ...] = (DOCKERD, BUSYBOX),
    install_command: str = INSTALL_COMMAND,
    engine: str = "a private dockerd",
) -> str | None:
    """Why the engine cannot run here (not root, a binary or the Docker SDK missing), or None."""
    if os.geteuid() != 0:
        return f"{engine} needs root"
    for path in paths:
        if not path.exists():
            return f"{path} not found; install it with: {install_command}"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the Docker SDK is not installed (make install installs ./agent with it)"
    return None


def fail_or_skip(reason: str, require_env: str = REQUIRE_ENV) -> None:
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}")
    pytest.skip(reason)


def _mounts_under(*roots: Path) -> list[str]:
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            found.append(point)
    return found


def unmount_under(*roots: Path) -> None:
    # Deepest first: a layer's mount inside a container's mount must go before it.
    for point in sorted(_mounts_under(*roots), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@contextmanager
def start_engine(
    workdir: Path, insecure: list[str], *, timeout: float = 30.0
) -> Iterator[DockerEngine]:
    """dockerd with its own config in ``workdir`` (kept short: unix socket paths are limited
    to 108 bytes); waits for ``/_ping``; SIGTERM and unmount after."""
    socket_path = workdir / "docker.sock"
    config = {
        "data-root": str(workdir / "data"),
        "exec-root": str(workdir / "exec"),
        "pidfile": str(workdir / "docker.pid"),
        "hosts": [f"unix://{socket_path}"],
        "bridge": "none",
        "iptables": False,
        "ip6tables": False,
        "ip-forward": False,
        "ip-masq": False,
        "userland-proxy": False,
        "storage-driver": "overlay2",
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "insecure-registries": insecure,
        "features": {"buildkit": False},
    }
    config_path = workdir / "daemon.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_file = workdir / "dockerd.log"
    # DOCKER_* variables of the caller (a DOCKER_HOST, a config dir) must not reach the daemon.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(DOCKERD), "--config-file", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C of the test run is ours to forward, not its
        )
    try:
        wait_for_ping("dockerd", process, socket_path, log_file, timeout)
        yield DockerEngine(f"unix://{socket_path}", workdir)
    finally:
        stop_process(process)
        unmount_under(workdir / "data", workdir / "exec")
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for_ping(
    name: str, process: subprocess.Popen[bytes], socket_path: Path, log_file: Path, timeout: float
) -> None:
    """Until the engine on ``socket_path`` answers ``/_ping``; its log's tail if it exits or
    stays silent."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://engine", timeout=2) as http:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n"
                                   f"{log_file.read_text()[-3000:]}")  # fmt: skip
            try:
                if http.get("/_ping").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not answering:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a grace of 30 s, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def docker_engine(real_registry: RealRegistry) -> Iterator[DockerEngine]:
    reason = unavailable_reason()
    if reason is not None:
        fail_or_skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="twd-engine-", dir="/tmp"))
    try:
        with start_engine(workdir, [real_registry.host]) as engine:
            yield engine
    except RuntimeError as exc:
        fail_or_skip(f"the Docker engine did not start: {exc}")


# -- images ----------------------------------------------------------------------------------
# The building lives in tagwarden.testing.images: the demo and bench/agent_footprint.py use it too.


def build_and_push(
    engine: DockerEngine, registry: RealRegistry, repository: str, version: str
) -> TestImage:
    """Build ``version`` through the engine API, push it to the real registry, forget it
    locally (the agent must pull it), and return its digest as the registry knows it."""
    client = engine.client()
    try:
        name = f"{registry.host}/{repository}"
        auth = {"username": registry.username, "password": registry.password}
        return TestImage(version, name, images.build_and_push(client, name, version, auth=auth))
    finally:
        client.close()


@pytest.fixture(scope="session")
def test_images(docker_engine: DockerEngine, real_registry: RealRegistry) -> dict[str, TestImage]:
    return {
        v: build_and_push(docker_engine, real_registry, "agent/web", v)
        for v in ("v1", "v2", "v3", "v4")
    }
