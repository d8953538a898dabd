"""Benchmark: the device agent's footprint (issue 11, item 8).

A private ``dockerd`` and Debian's ``docker-registry`` on loopback (the test helpers' code,
tests/integration/docker_engine.py and real_registry.py), two FROM-scratch busybox images
(tagwarden.testing.images) pushed to it, the real server under uvicorn on loopback with one app,
and one ``tagwarden-agent run`` process with the poll interval a device gets (60 s by default).

Prints, for the agent process (from /proc/<pid>/status and /proc/<pid>/stat):
  * resident memory (VmRSS; the highest of the samples at rest), target ≤ 50 MB;
  * CPU seconds per hour at rest (utime + stime over the rest window, scaled to an hour; every
    poll of the window is counted and should be a 304), target ≤ 5 s/h;
  * the time from a new target to the container running + healthy in the engine, and to the
    agent's report of it at the server: measured from the server's 200 answer to the poll that
    carried the new target (the first install, then an update v1 → v2), target ≤ 2 s plus the
    image's health interval.
The new target is set in the database the way a rollout's batch sets it. Never a pass/fail test.
Without an engine that can start here (root, dockerd, busybox-static, the Docker SDK), it prints
a skip line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# The test helpers start dockerd and the registry; they are this repository's, not a package's.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = "web"
DEVICE = "bench-agent"
TICKS = os.sysconf("SC_CLK_TCK")


def skip(reason: str) -> None:
    print(f"agent_footprint: skipped: {reason}")
    sys.exit(0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    # Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def assign(settings: Any, image_id: int, repository: str, tag: str, digest: str) -> None:
    """Point the device's app at an image and bump its state, as a rollout's batch does."""
    from sqlalchemy import select

    from tagwarden.db import make_engine, make_sessionmaker, utcnow
    from tagwarden.devices import service as devices
    from tagwarden.devices.models import Device, DeviceApp

    async def run() -> None:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                device = await session.scalar(select(Device).where(Device.uuid == DEVICE))
                assert device is not None
                app = await session.scalar(
                    select(DeviceApp).where(DeviceApp.device_id == device.id)
                )
                devices.assign_target(
                    session, app, device.id, APP, image_id=image_id, image=repository, tag=tag,
                    digest=digest, rollout_id=None, now=utcnow(),
                )  # fmt: skip
                await devices.bump(session, [device.id])
        finally:
            await engine.dispose()

    asyncio.run(run())


def _seconds(duration: str) -> float:
    """A HEALTHCHECK duration as Docker writes it: ``200ms``, ``1s``, ``1.5s``."""
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    return float(duration.removesuffix("s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poll-interval", type=int, default=60, help="seconds (a device's)")
    parser.add_argument(
        "--rest-seconds", type=float, default=120, help="how long to measure the agent at rest"
    )
    parser.add_argument("--health-interval", default="200ms", help="the image's HEALTHCHECK")
    args = parser.parse_args()

    try:
        import docker  # noqa: F401

        import tagwarden_agent  # noqa: F401
    except ImportError as exc:
        skip(f"{exc.name} is not installed (make install installs ./agent and the Docker SDK)")
    from tests.integration import docker_engine, real_registry

    for reason in (docker_engine.unavailable_reason(), real_registry.unavailable_reason()):
        if reason is not None:
            skip(reason)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="twd-bench-", dir="/tmp"))
        stack.callback(shutil.rmtree, work, True)
        (work / "registry").mkdir()
        registry = stack.enter_context(real_registry.start_registry(work / "registry"))
        try:
            engine = stack.enter_context(
                docker_engine.start_engine(
                    Path(tempfile.mkdtemp(prefix="twd-e-", dir="/tmp")), [registry.host]
                )
            )
        except RuntimeError as exc:
            skip(f"the Docker engine did not start: {str(exc).splitlines()[0]}")
        run(args, stack, work, registry, engine)


def run(args: argparse.Namespace, stack: ExitStack, work: Path, registry: Any, engine: Any) -> None:
    import httpx

    from tagwarden.app import create_app
    from tagwarden.cli.demo import prepare, serving
    from tagwarden.config import Settings
    from tagwarden.testing import images

    name = f"{registry.host}/bench/web"
    client = engine.client()
    stack.callback(client.close)
    auth = {"username": registry.username, "password": registry.password}
    built = {
        v: images.build_and_push(client, name, v, auth=auth, health_interval=args.health_interval)
        for v in ("v1", "v2")
    }
    size_mb = client.images.pull(f"{name}@{built['v1']}", auth_config=auth).attrs["Size"] / 1e6
    client.images.remove(f"{name}@{built['v1']}", force=True)

    database = work / "tagwarden.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        monitor_enabled=False,
        rollout_worker_enabled=False,
        outbox_worker_enabled=False,
        rules_worker_enabled=False,
        device_poll_interval_seconds=args.poll_interval,
        device_active_poll_interval_seconds=args.poll_interval,
        registries={registry.host: registry.credentials()},
        secret_key="bench-secret-key-0123456789",  # noqa: S106 - a throwaway loopback server
        log_level="WARNING",
    )
    token = asyncio.run(prepare(settings))
    app = create_app(settings)
    seen: list[tuple[float, str, int]] = []  # (monotonic, "METHOD path", status)

    @app.middleware("http")
    async def _record(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        seen.append((time.monotonic(), f"{request.method} {request.url.path}",
                     response.status_code))  # fmt: skip
        return response

    url = stack.enter_context(serving(app))
    http = stack.enter_context(
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    )

    def ok(method: str, path: str, **kwargs: Any) -> Any:
        response = http.request(method, path, **kwargs)
        assert response.status_code in (200, 201), f"{method} {path}: {response.text}"
        return response.json()

    image = ok("POST", "/api/v1/images", json={"image_name": "web", "namespace": "bench",
                                               "registry": registry.host})  # fmt: skip
    ok("PUT", f"/api/v1/apps/{APP}", json={"image_id": image["id"],
                                           "config": {"network_mode": "none"}})  # fmt: skip
    body = {"uuid": DEVICE, "architecture": "amd64", "labels": {}}
    key_file = work / "device.key"
    key_file.write_text(ok("POST", "/api/v1/devices", json=body)["device_key"] + "\n")
    docker_config = work / "docker-config.json"
    import base64
    import json

    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    docker_config.write_text(json.dumps({"auths": {registry.host: {"auth": basic}}}))

    def running(digest: str) -> bool:
        found = client.containers.list(filters={"label": f"io.tagwarden.device={DEVICE}"})
        return any(
            c.labels.get("io.tagwarden.digest") == digest
            and (c.attrs["State"].get("Health") or {}).get("Status") == "healthy"
            for c in found
        )

    def reported(digest: str) -> bool:
        app_state = ok("GET", f"/api/v1/devices/{DEVICE}")["apps"].get(APP) or {}
        now = app_state.get("reported") or {}
        return bool(now.get("digest") == digest and now.get("status") == "running"
                    and now.get("health") == "healthy")  # fmt: skip

    def switch(version: str, deadline: float) -> tuple[float, float]:
        """Seconds from the 200 that carried the target to healthy in the engine / reported."""
        mark = len(seen)
        assign(settings, image["id"], name, version, built[version])
        poll = f"GET /api/v1/device/{DEVICE}/state"
        engine_at = reported_at = None
        while reported_at is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{version} did not become healthy in time")
            if engine_at is None and running(built[version]):
                engine_at = time.monotonic()
            if engine_at is not None and reported(built[version]):
                reported_at = time.monotonic()
            time.sleep(0.02)
        [got] = [t for t, r, s in seen[mark:] if r == poll and s == 200][:1]
        return engine_at - got, reported_at - got

    assign(settings, image["id"], name, "v1", built["v1"])  # the target before the agent starts
    env = os.environ | {
        "DOCKER_HOST": engine.host,
        "TAGWARDEN_AGENT_SERVER": url,
        "TAGWARDEN_AGENT_DEVICE": DEVICE,
        "TAGWARDEN_AGENT_KEY_FILE": str(key_file),
        "TAGWARDEN_AGENT_STATE_DIR": str(work / "agent"),
        "TAGWARDEN_AGENT_LOCK_FILE": str(work / "updates.lock"),
        "TAGWARDEN_AGENT_DOCKER_CONFIG": str(docker_config),
        "TAGWARDEN_AGENT_LOG_LEVEL": "WARNING",
    }
    mark = len(seen)
    log = stack.enter_context((work / "agent.log").open("wb"))
    agent = subprocess.Popen(
        [sys.executable, "-m", "tagwarden_agent.cli", "run"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop_agent() -> None:
        agent.terminate()
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
        for container in client.containers.list(all=True, filters={"label": "io.tagwarden.app"}):
            container.remove(force=True)

    stack.callback(stop_agent)
    poll = f"GET /api/v1/device/{DEVICE}/state"
    started = time.monotonic()
    while not running(built["v1"]) or not reported(built["v1"]):
        if time.monotonic() - started > 120 or agent.poll() is not None:
            raise RuntimeError(f"the first install failed: {(work / 'agent.log').read_text()}")
        time.sleep(0.05)
    [got] = [t for t, r, s in seen[mark:] if r == poll and s == 200][:1]
    first_engine = time.monotonic() - got  # approximate: the loop above polls at 50 ms
    print(f"image: {name} ({size_mb:.1f} MB), HEALTHCHECK interval {args.health_interval}")
    print(f"agent pid {agent.pid}, poll interval {args.poll_interval} s, "
          f"settle {env.get('TAGWARDEN_AGENT_SETTLE_SECONDS', '10')} s (default)")  # fmt: skip
    print(f"first install (pull + run) → healthy and reported: {first_engine:.2f} s")

    # At rest: from just after the install for rest-seconds, then up to the next poll, so that
    # the window ends on a poll and the target of the switch is set right after one.
    def polls_since(i: int) -> list[tuple[float, int]]:
        return [(t, s) for t, r, s in seen[i:] if r == poll]

    time.sleep(2)  # the install's last report and the prune are not rest
    rest_mark = len(seen)
    rest_start = time.monotonic()
    cpu_start = cpu_seconds(agent.pid)
    samples = [rss_mb(agent.pid)]
    while time.monotonic() - rest_start < args.rest_seconds:
        time.sleep(min(5.0, args.rest_seconds))
        samples.append(rss_mb(agent.pid))
    end_mark = len(seen)
    while len(polls_since(end_mark)) == 0:  # the next poll closes the window
        time.sleep(0.05)
    rest_seconds = time.monotonic() - rest_start
    cpu = cpu_seconds(agent.pid) - cpu_start
    statuses = [s for _, s in polls_since(rest_mark)]
    reports = [r for _, r, _ in seen[rest_mark:] if r.startswith("PATCH")]
    per_hour = cpu / rest_seconds * 3600
    print(f"at rest: {rest_seconds:.0f} s measured, {len(statuses)} polls "
          f"({', '.join(f'{statuses.count(c)}×{c}' for c in sorted(set(statuses)))}), "
          f"{len(reports)} reports")  # fmt: skip
    print(f"  resident memory (VmRSS): {max(samples):.1f} MB max, {samples[-1]:.1f} MB last  "
          f"(target ≤ 50 MB; ratio {max(samples) / 50:.2f})")  # fmt: skip
    print(f"  CPU: {cpu:.2f} s in {rest_seconds:.0f} s = {per_hour:.2f} CPU s/h, scaled "
          f"linearly to an hour  (target ≤ 5 s/h; ratio {per_hour / 5:.2f})")  # fmt: skip
    # The update: the agent sees it on its next poll (up to one poll interval away).
    to_engine, to_report = switch("v2", time.monotonic() + args.poll_interval * 1.2 + 120)
    health = args.health_interval
    print(f"update v1 → v2 after the poll that carried it: healthy in the engine {to_engine:.2f} s"
          f", reported {to_report:.2f} s  (target ≤ 2 s + health interval {health})")  # fmt: skip
    budget = 2 + _seconds(health)
    print(f"  ratio to the target ({budget:g} s): {to_report / budget:.2f}")


if __name__ == "__main__":
    main()
