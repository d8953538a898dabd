"""The demo's steps, shared by its simulated and its real fleet: serving the app, settings with
short intervals, the admin token, discovery, approval and following a rollout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tagwarden.approvals import approving
from tagwarden.approvals.approving import AfterApproval
from tagwarden.approvals.states import RequestStatus
from tagwarden.auth import service as auth
from tagwarden.auth.service import Principal
from tagwarden.cli.approvals import print_activation
from tagwarden.cli.common import console, short_digest
from tagwarden.config import Settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.devices.simulator import FleetSimulator
from tagwarden.migrations import upgrade
from tagwarden.rollouts.states import ADVANCING, RolloutStatus
from tagwarden.testing.fake_server import DEMO_OCI_HOST

ADMIN = "demo-admin@example.com"
# (registry, namespace, image name) as seed_demo fills the fake registry.
DEMO_IMAGES = (
    ("docker.io", "library", "redis"),
    ("docker.io", "library", "nginx"),
    ("docker.io", "grafana", "grafana"),
    (DEMO_OCI_HOST, "org", "app"),
)
# Where a followed rollout stops moving by itself: finished, or paused for a person.
SETTLED = tuple(s for s in RolloutStatus if s not in ADVANCING)
ROLLOUT_DEADLINE_SECONDS = 120.0


@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` (lifespan and workers included) in a thread for the block; yields its URL.

    ``port=0`` picks a free port; binding here, not in uvicorn, is what makes that race-free.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the tagwarden server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def demo_settings(database: Path, registry_url: str, **overrides: Any) -> Settings:
    """Short intervals, so a rollout's canary, bake and batches take seconds, not minutes."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{database}",
        "dockerhub_api_url": registry_url,
        "dockerhub_registry_url": registry_url,
        "registries": {DEMO_OCI_HOST: {"url": registry_url}},
        "monitor_enabled": True,
        "rollout_worker_enabled": True,
        "rollout_tick_seconds": 0.5,
        "device_poll_interval_seconds": 5,
        "device_active_poll_interval_seconds": 1,
        "device_last_seen_flush_seconds": 1.0,
        "log_level": "WARNING",
        # The demo's images hold no package database: Syft would only add seconds per tag.
        "sbom_syft": False,
    }
    return Settings(**(values | overrides))


async def prepare(settings: Settings) -> str:
    """Migrate the fresh database and create the admin token the demo (and you) use."""
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session, session.begin():
            _, raw = await auth.create_token(
                session, name="demo", role="admin", identity=ADMIN, actor="demo"
            )
    finally:
        await engine.dispose()
    return raw


async def approve(settings: Settings, request_id: int) -> None:
    """Approve as `tagwarden approvals approve` does, printing the seed's lines: activated
    there and then only when TAGWARDEN_AUTO_PROCESS_APPROVED is on (no path ignores it);
    otherwise the demo takes the step a person would, `tagwarden approvals process`."""
    engine = make_engine(settings.database_url)
    actor = Principal(identity=ADMIN, role="admin")
    try:
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            result = await approving.decide(
                session,
                request_id,
                approve=True,
                notes="approved in the demo",
                actor=actor,
                then=AfterApproval.of(settings),
            )
        console.print(f"✅ Approved approval request {request_id} as {ADMIN}")
        done = result.activation
        if done is None and result.request.status == RequestStatus.APPROVED:
            console.print(
                "auto-processing is off (TAGWARDEN_AUTO_PROCESS_APPROVED=false): "
                f"processing it as `tagwarden approvals process {request_id}` does"
            )
            async with sessionmaker() as session, session.begin():
                done = await approving.activate(
                    session,
                    request_id,
                    actor=actor,
                    poll_interval=settings.device_poll_interval_seconds,
                )
    finally:
        await engine.dispose()
    if done:
        print_activation(done)


def ok(response: httpx.Response) -> Any:
    """The response's JSON body; an error status stops the demo with what the server said."""
    if response.is_error:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text}")  # fmt: skip
    return response.json()


async def discover(
    client: httpx.AsyncClient, images: tuple[tuple[str, str, str], ...] = DEMO_IMAGES
) -> dict[str, Any]:
    """Add the images with monitoring on, run the monitor; the pending request per image."""
    console.rule("1. discovery")
    for registry, namespace, name in images:
        body = {
            "image_name": name,
            "namespace": namespace,
            "registry": registry,
            "watch_for_updates": True,
            # A moving tag is never what a fleet should pin: only versions become requests.
            "tag_exclude": "^latest$",
        }
        image = ok(await client.post("/api/v1/images", json=body))
        console.print(f"➕ image {image['id']}: {registry}/{namespace}/{name}, monitored")
    summary = ok(await client.post("/api/v1/images/monitor/trigger"))
    console.print(
        f"monitor: {summary['images_checked']} images checked, "
        f"{summary['requests_created']} approval requests created"
    )
    pending = ok(
        await client.get("/api/v1/images/approvals", params={"status": RequestStatus.PENDING.value})
    )
    requests: dict[str, Any] = {}
    for item in pending["items"]:
        requests.setdefault(item["image_name"], item)
        meta = item["metadata"]
        console.print(
            f"   pending #{item['id']}: {item['image_name']}:{item['tag_name']} "
            f"{short_digest(item['digest'])} ({', '.join(meta.get('architectures', []))})"
        )
    return requests


async def follow(
    client: httpx.AsyncClient, fleet: FleetSimulator | None, rollout_id: int
) -> dict[str, Any]:
    """Let the fleet poll and report while the rollout monitor advances; print each change.
    Real agents (``fleet`` None) poll on their own."""
    started, last = time.monotonic(), ""
    while True:
        if fleet is not None:
            await fleet.poll_all()
        rollout: dict[str, Any] = ok(await client.get(f"/api/v1/rollouts/{rollout_id}"))
        counts = ", ".join(f"{k} {v}" for k, v in sorted(rollout["counts"].items()) if v)
        line = (
            f"   {time.monotonic() - started:5.1f}s  {rollout['status']:<10} batch "
            f"{rollout['current_batch'] or 0}/{rollout['batch_count']}  {counts}"
        )
        if line.split("s  ", 1)[1] != last:
            console.print(line)
            last = line.split("s  ", 1)[1]
        if rollout["status"] in SETTLED:
            return rollout
        if time.monotonic() - started > ROLLOUT_DEADLINE_SECONDS:
            console.print("the rollout did not settle in time; see the admin pages")
            return rollout
        await asyncio.sleep(0.4)
