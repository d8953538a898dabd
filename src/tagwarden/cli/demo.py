"""`tagwarden demo`: discovery → approval → rollout on one laptop, without internet.

A fake registry, a server on a temporary SQLite database with the monitor on, and a simulated
fleet, driven through the same API and use cases as production, so what a newcomer sees is what
the system does. When a Docker engine answers, the fleet is two real agents running the
approved tag in real containers (demo_real.py); otherwise simulated devices.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer

from tagwarden.cli.common import console, err_console, short_digest
from tagwarden.cli.demo_real import (
    AGENTS,
    REAL_APP,
    REAL_NAME,
    REAL_NAMESPACE,
    REAL_TAG,
    RealFleet,
    choose_mode,
    local_registry,
)
from tagwarden.cli.demo_steps import (
    DEMO_IMAGES,
    approve,
    demo_settings,
    discover,
    follow,
    ok,
    prepare,
    serving,
)
from tagwarden.config import Settings
from tagwarden.devices.simulator import FleetSimulator
from tagwarden.rollouts.states import RolloutStatus
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import DEMO_OCI_HOST, running, seed_demo

ROLLED_OUT = "redis"


async def roll_out(
    client: httpx.AsyncClient, fleet: FleetSimulator, tag: str, devices: int
) -> dict[str, Any]:
    console.rule("3. rollout")
    await fleet.register(devices)
    console.print(
        f"📟 registered {devices} simulated devices ({fleet.devices[0].uuid} … "
        f"{fleet.devices[-1].uuid}), {' and '.join(fleet.architectures)}"
    )
    await fleet.poll_all()  # every device is seen (and runs nothing) before the rollout
    options = {"canary_count": 2, "batch_size": max(1, (devices - 2 + 1) // 2)}
    body = {
        "image": ROLLED_OUT,
        "tag": tag,
        "devices": [d.uuid for d in fleet.devices],
        "strategy": "canary",
        "options": options | {"bake_seconds": 2, "health_timeout": 60, "max_failures": "25%"},
    }
    rollout = ok(await client.post("/api/v1/rollouts", json=body))
    console.print(
        f"🚀 rollout {rollout['id']}: {rollout['reference']}, canary of 2, "
        f"then batches of {options['batch_size']} ({rollout['batch_count']} batches)"
    )
    return await follow(client, fleet, rollout["id"])


async def walkthrough(
    settings: Settings, url: str, token: str, devices: int, fail_rate: float, exit_when_done: bool
) -> bool:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        requests = await discover(client)
        request = requests.get(ROLLED_OUT)
        if request is None:
            console.print(f"no approval request for {ROLLED_OUT}: nothing to roll out")
            return False
        console.rule("2. approval")
        await approve(settings, request["id"])
        fleet = FleetSimulator(
            client,
            admin_headers=headers,
            fail_rate=fail_rate,
            architectures=("amd64", "arm64"),
            prefix="demo",
            seed=7,
        )
        rollout = await roll_out(client, fleet, request["tag_name"], devices)
        done = bool(rollout["status"] == RolloutStatus.COMPLETED)
        running = fleet.running_counts(ROLLED_OUT).get(rollout["digest"], 0)
        mark = "✅" if done else "⚠️"
        console.print(f"{mark} rollout {rollout['id']} {rollout['status']}: {running} of "
                      f"{devices} devices run {rollout['reference']}")  # fmt: skip
        if exit_when_done:
            return done
        console.print(f"\nThe server keeps running at {url} (Ctrl-C stops it); the fleet polls.")
        while True:
            await asyncio.sleep(2)
            await fleet.poll_all()


async def walkthrough_real(
    settings: Settings,
    url: str,
    token: str,
    fleet: RealFleet,
    registry_host: str,
    exit_when_done: bool,
) -> bool:
    """Discovery (the fake registry's images and the real one), approval, then a canary rollout
    to two real agents that run the approved tag in the engine."""
    headers = {"Authorization": f"Bearer {token}"}
    images = (*DEMO_IMAGES, (registry_host, REAL_NAMESPACE, REAL_NAME))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        requests = await discover(client, images)
        real = f"{registry_host}/{REAL_NAMESPACE}/{REAL_NAME}"  # as the catalogue names it
        request = requests.get(real)
        if request is None:
            console.print(f"no approval request for {REAL_NAME}: nothing to roll out")
            return False
        console.rule("2. approval")
        await approve(settings, request["id"])
        console.rule("3. rollout")
        config = {"network_mode": "none", "restart": "no"}  # loopback only: no networks
        ok(await client.put(f"/api/v1/apps/{REAL_APP}",
                             json={"image_id": request["image_id"], "config": config}))  # fmt: skip
        suffix = secrets.token_hex(3)  # several demos may share one engine
        keys: dict[str, str] = {}
        for n in range(1, AGENTS + 1):
            uuid = f"demo-{suffix}-{n}"
            device = {"uuid": uuid, "architecture": "amd64", "labels": {}}
            keys[uuid] = ok(await client.post("/api/v1/devices", json=device))["device_key"]
        fleet.start(url, keys)
        console.print(
            f"📟 started {AGENTS} tagwarden-agent loops ({', '.join(keys)}) on the engine"
        )
        # The planner counts a device silent for three poll intervals as offline: let each poll.
        await asyncio.sleep(settings.device_last_seen_flush_seconds + 1.5)
        body = {
            "image_id": request["image_id"],
            "tag": request["tag_name"],
            "devices": list(keys),
            "app": REAL_APP,
            "strategy": "canary",
            "options": {"canary_count": 1, "batch_size": 1, "bake_seconds": 2,
                        "health_timeout": 60},
        }  # fmt: skip
        rollout = ok(await client.post("/api/v1/rollouts", json=body))
        console.print(f"🚀 rollout {rollout['id']}: {rollout['reference']}, canary of 1, "
                      f"then batches of 1 ({rollout['batch_count']} batches)")  # fmt: skip
        rollout = await follow(client, None, rollout["id"])
        running = fleet.running()
        for uuid in keys:
            name, digest, health = running.get(uuid, ("-", "-", "not running"))
            console.print(f"   {uuid}: container {name} runs {short_digest(digest)}, {health}")
        matching = sum(
            1 for _, d, h in running.values() if d == rollout["digest"] and h == "healthy"
        )
        done = bool(rollout["status"] == RolloutStatus.COMPLETED) and matching == AGENTS
        mark = "✅" if done else "⚠️"
        console.print(f"{mark} rollout {rollout['id']} {rollout['status']}: {matching} of "
                      f"{AGENTS} agents run {rollout['reference']} in real containers, "
                      "healthy")  # fmt: skip
        if exit_when_done:
            return done
        console.print(f"\nThe server keeps running at {url} (Ctrl-C stops it and removes the "
                      "demo's containers); the agents poll.")  # fmt: skip
        await asyncio.Event().wait()  # until Ctrl-C
        return done


@contextmanager
def _monitor_log() -> Iterator[None]:
    """The monitor's seed lines ("[ImageMonitor] …") on stdout, the rest of the server quiet."""
    logger = logging.getLogger("tagwarden.monitor")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("   %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def demo(
    host: str = typer.Option("127.0.0.1", help="where the demo server listens"),
    port: int = typer.Option(0, help="0 = a free port"),
    devices: int = typer.Option(20, "--devices", "-n", min=3, max=1000),
    fail_rate: float = typer.Option(0.0, "--fail-rate", min=0.0, max=1.0, help="0.1 = 10%"),
    exit_when_done: bool = typer.Option(
        False, "--exit-when-done", help="stop once the rollout settles (exit 1 unless completed)"
    ),
    simulated: bool = typer.Option(
        False, "--simulated", help="simulated devices even when a Docker engine answers"
    ),
) -> None:
    """Fake registry + server + a fleet: discovery → approval → rollout, offline. The fleet is
    two real agents on real containers when a Docker engine answers (DOCKER_HOST, or the
    default socket), simulated devices otherwise."""
    from tagwarden.app import create_app

    engine_host, mode = choose_mode(simulated)
    console.print(mode)
    fake = FakeRegistry()
    seed_demo(fake)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tagwarden-demo-") as tmp,
            running(fake) as registry_url,
            _monitor_log(),
        ):
            if engine_host is not None:
                done = _real(Path(tmp), engine_host, registry_url, host, port, exit_when_done)
            else:
                settings = demo_settings(Path(tmp) / "demo.db", registry_url, host=host)
                token = asyncio.run(prepare(settings))
                with serving(create_app(settings), host, port) as url:
                    _banner(url, registry_url, token)
                    done = asyncio.run(
                        walkthrough(settings, url, token, devices, fail_rate, exit_when_done)
                    )
    except KeyboardInterrupt:
        console.print("\ndemo stopped")
        return
    except (RuntimeError, httpx.HTTPError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if not done:
        raise typer.Exit(1)


def _banner(url: str, registry_url: str, token: str, extra: str = "") -> None:
    console.print(f"tagwarden demo at [bold]{url}[/bold]  (fake registry {registry_url}{extra})")
    console.print(f"   API docs: {url}/docs    admin pages: {url}/")
    console.print(f"   admin token: {token}")


def _real(
    tmp: Path, engine_host: str, registry_url: str, host: str, port: int, exit_when_done: bool
) -> bool:
    """The real mode: a local registry with a built image, the server, two agents."""
    from tagwarden.app import create_app

    (tmp / "registry").mkdir()
    fleet = RealFleet(engine_host, tmp / "agents")
    image: str | None = None
    with local_registry(tmp / "registry") as registry_host:
        try:
            name, digest = fleet.build_image(registry_host)
            image = f"{name}@{digest}"
            console.print(f"🐳 built {name}:{REAL_TAG} FROM scratch (busybox), pushed to "
                          f"{registry_host}: {short_digest(digest)}")  # fmt: skip
            registries = {
                DEMO_OCI_HOST: {"url": registry_url},
                registry_host: {"url": f"http://{registry_host}"},
            }
            settings = demo_settings(tmp / "demo.db", registry_url, host=host,
                                     registries=registries)  # fmt: skip
            token = asyncio.run(prepare(settings))
            with serving(create_app(settings), host, port) as url:
                _banner(url, registry_url, token, f", registry {registry_host}")
                return asyncio.run(
                    walkthrough_real(settings, url, token, fleet, registry_host, exit_when_done)
                )
        finally:
            fleet.close(image)
