"""A real Podman for the agent's tests: a private ``podman system service`` and its images.

``podman_engine`` (session-scoped) runs Debian's Podman 4.3 the way ../shared/RUNTIME_FACTS.md
says it works on these machines: runc (Debian's crun refuses the hybrid cgroup layout),
cgroupfs, events in a file, default ulimits within the hard limits, no network namespace. Its
containers.conf, storage.conf and registries.conf (the test registry marked insecure: Podman,
unlike dockerd, does not assume plain HTTP on loopback) are written into a temporary directory
and given through ``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF`` and
``CONTAINERS_REGISTRIES_CONF``; storage, run, lock and temporary directories live there too,
and runc's state (runc is reached through a wrapper there that names its root). The service
serves the libpod API and the Docker-compatible one on a socket in that directory; the agent
speaks the latter through the Docker SDK, as on a device.

Stopping removes the containers left (their ``conmon`` monitors exit with them), stops the
service with SIGTERM and unmounts whatever is left under the directory. The one path outside it
that Podman writes as root whatever its configuration, the image copier's blob-info cache in
``/var/lib/containers/cache``, is removed again when it was not there before.

``podman_images`` builds the same FROM-scratch images as ``test_images`` (through Podman's
compatible ``/build``) and pushes them to a repository of their own in the real registry, so
that both engines' tests can share one registry session.

Without podman, runc or busybox the fixtures skip with the install command, unless
``TAGWARDEN_REQUIRE_PODMAN=1`` (CI), where a service that cannot start is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.docker_engine import (
    BUSYBOX,
    DockerEngine,
    TestImage,
    build_and_push,
    fail_or_skip,
    stop_process,
    unavailable_reason,
    unmount_under,
    wait_for_ping,
)
from tests.integration.real_registry import RealRegistry

PODMAN = Path("/usr/bin/podman")
RUNC = Path("/usr/sbin/runc")
INSTALL_COMMAND = "apt-get install -y podman runc busybox-static"
REQUIRE_ENV = "TAGWARDEN_REQUIRE_PODMAN"
REPOSITORY = "agent/podman-web"  # not test_images' agent/web: its tags would be overwritten
BLOB_INFO_CACHE = Path("/var/lib/containers")
# Defaults above the hard limits (Podman asks for the maximum) fail every start with EPERM.
ULIMITS = ("nofile=20000:20000", "nproc=16384:16384")


def _toml_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def write_configs(workdir: Path, insecure: list[str]) -> dict[str, str]:
    """The three configuration files; the environment that points Podman at them."""
    # runc keeps its state in /run/runc unless told otherwise; the service and the cleanup
    # processes its conmon monitors start both find runc through containers.conf: a wrapper.
    runc = workdir / "runc"
    runc.write_text(f'#!/bin/sh\nexec {RUNC} --root "{workdir}/runc-state" "$@"\n')
    runc.chmod(0o755)
    containers_conf = workdir / "containers.conf"
    containers_conf.write_text(
        "[containers]\n"
        'netns = "none"\n'
        f"default_ulimits = {_toml_list(ULIMITS)}\n"
        'log_driver = "k8s-file"\n'
        "[network]\n"
        f'network_config_dir = "{workdir}/net"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{workdir}/events.log"\n'
        f'tmp_dir = "{workdir}/tmp"\n'
        f'image_copy_tmp_dir = "{workdir}/tmp"\n'
        f'static_dir = "{workdir}/root/libpod"\n'
        f'volume_path = "{workdir}/root/volumes"\n'
        # File locks under tmp_dir, not the shared-memory segment every Podman on the machine uses.
        'lock_type = "file"\n'
        "[engine.runtimes]\n"
        f'runc = ["{runc}"]\n'
    )
    storage_conf = workdir / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{workdir}/root"\nrunroot = "{workdir}/run"\n'
    )
    registries_conf = workdir / "registries.conf"
    registries_conf.write_text(
        "unqualified-search-registries = []\n"
        + "".join(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n' for host in insecure)
    )
    return {
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
        "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
        "TMPDIR": str(workdir / "tmp"),
    }


@contextmanager
def start_podman(
    workdir: Path, insecure: list[str], *, timeout: float = 30.0
) -> Iterator[DockerEngine]:
    """``podman system service`` with its own configuration in ``workdir`` (kept short: unix
    socket paths are limited to 108 bytes); waits for ``/_ping``; cleans up after."""
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    socket_path = workdir / "podman.sock"
    # The caller's DOCKER_* and CONTAINERS_* variables must not reach the service.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERS_"))}
    env |= write_configs(workdir, insecure)
    cache_was_there = BLOB_INFO_CACHE.exists()
    log_file = workdir / "podman.log"
    command = [str(PODMAN), "system", "service", "--time=0", f"unix://{socket_path}"]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C of the test run is ours to forward, not its
        )
    engine = DockerEngine(f"unix://{socket_path}", workdir)
    try:
        wait_for_ping("podman", process, socket_path, log_file, timeout)
        yield engine
    finally:
        if process.poll() is None:
            _remove_containers(engine)
        stop_process(process)
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        if not cache_was_there:
            shutil.rmtree(BLOB_INFO_CACHE, ignore_errors=True)


def _remove_containers(engine: DockerEngine) -> None:
    """Whatever a test left: the service's stop would leave them (and their conmon) running."""
    client = engine.client()
    try:
        for container in client.containers.list(all=True):
            container.remove(force=True)
    except Exception as exc:  # a cleanup that goes on: the unmount follows
        print(f"podman_engine: removing containers failed: {exc}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def podman_engine(real_registry: RealRegistry) -> Iterator[DockerEngine]:
    reason = unavailable_reason(
        (PODMAN, RUNC, BUSYBOX), INSTALL_COMMAND, "a private Podman service (runc, cgroupfs)"
    )
    if reason is not None:
        fail_or_skip(reason, REQUIRE_ENV)
    workdir = Path(tempfile.mkdtemp(prefix="twp-", dir="/tmp"))
    try:
        with start_podman(workdir, [real_registry.host]) as engine:
            yield engine
    except RuntimeError as exc:
        fail_or_skip(f"the Podman service did not start: {exc}", REQUIRE_ENV)


@pytest.fixture(scope="session")
def podman_images(podman_engine: DockerEngine, real_registry: RealRegistry) -> dict[str, TestImage]:
    return {
        v: build_and_push(podman_engine, real_registry, REPOSITORY, v)
        for v in ("v1", "v2", "v3", "v4")
    }
