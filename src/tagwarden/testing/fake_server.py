"""Serving the fake registry on a real port: for demos, benchmarks and end-to-end tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import uvicorn

from tagwarden.testing.fake_registry import FakeRegistry

# Registry host the demo's ghcr-style image is filed under, so TAGWARDEN_REGISTRIES maps it here.
DEMO_OCI_HOST = "ghcr.io"


def seed_demo(fake: FakeRegistry, *, repos: int = 0, tags: int = 30) -> list[str]:
    """Well-known images plus ``repos`` generated ones (``demo/app-N``, ``tags`` tags each).

    Returns the repository paths. Official images carry attestations, like Docker Hub's.
    """
    names = []
    redis_tags = ["7.2.4", "7.2.4-alpine", "7.2.5", "7.2.5-alpine", "7.4.0", "7.4.0-alpine"]
    fake.add_repository(
        "library/redis", len(redis_tags), tag_names=lambda i: redis_tags[i], with_latest=True
    )
    fake.add_repository("library/nginx", 12, tag_names=lambda i: f"1.{25 + i // 4}.{i % 4}")
    fake.add_repository(
        "grafana/grafana", 20, platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"),
        tag_names=lambda i: f"11.{i // 5}.{i % 5}", spacing=timedelta(days=3),
    )  # fmt: skip
    fake.add_repository("org/app", 8, tag_names=lambda i: f"v0.{i}.0", spacing=timedelta(days=1))
    names += ["library/redis", "library/nginx", "grafana/grafana", "org/app"]
    for n in range(repos):
        name = f"demo/app-{n}"
        fake.add_repository(name, tags, spacing=timedelta(hours=6))
        names.append(name)
    return names


def demo_environment(base_url: str) -> dict[str, str]:
    """The settings that point tagwarden at a fake registry served at ``base_url``."""
    registries = {DEMO_OCI_HOST: {"url": base_url}}
    return {
        "TAGWARDEN_DOCKERHUB_API_URL": base_url,
        "TAGWARDEN_REGISTRIES": json.dumps(registries, separators=(",", ":")),
    }


def _config(fake: FakeRegistry, log_level: str) -> uvicorn.Config:
    # h11 and no websockets/lifespan: fewer moving parts, and no optional-extra warnings.
    return uvicorn.Config(
        fake, log_level=log_level, http="h11", ws="none", lifespan="off", loop="asyncio"
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 5055,
    fake: FakeRegistry | None = None,
    *,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted (Ctrl-C). A fresh fake gets the demo seed."""
    if fake is None:
        fake = FakeRegistry(public_url=f"http://{host}:{port}")
        seed_demo(fake)
    config = _config(fake, log_level)
    config.host, config.port = host, port
    uvicorn.Server(config).run()


@contextmanager
def running(
    fake: FakeRegistry, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> Iterator[str]:
    """Serve ``fake`` in a background thread for the duration of the block; yields its URL.

    ``port=0`` picks a free port. The fake must use a real clock: a fake one does not wait.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_config(fake, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("fake registry server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
