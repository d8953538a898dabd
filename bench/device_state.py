"""Benchmark: the device state endpoint under conditional polls (issue 4's targets).

With DEVICES devices (default 100,000) in a fresh PostgreSQL database, one uvicorn server process
serves both ``GET /api/v1/device/{uuid}/state`` and a bare endpoint returning a constant JSON on
the same app (same middleware, same stack). A load generator in this process, not the server's
(raw keep-alive HTTP/1.1 on asyncio, so the client is not the bottleneck), drives both endpoints
with the same connections: it polls random devices with ``If-None-Match`` and prints polls/s,
p50/p99 latency and the ratio against the bare endpoint. Unchanged polls are answered from the
server's device index (devices/index.py), which the warm-up gives time to load.
The endpoints are driven in alternating rounds, so a neighbour's burst of CPU on a shared
machine falls on all of them alike. The bare endpoint is registered twice: last (after every
router, as the app's own routes would be if added later; the figure the targets are set
against) and first in the route table (nothing to route: the strictest comparison).
Targets: ≥ 1,200 conditional polls/s; throughput ≥ 0.9 times and p99 ≤ 1.5 times the bare
endpoint's.
Then, with --index-devices (default 1,000,000) devices in a second database, it prints the
device index's full load time and memory per device (targets ≤ 10 s, ≤ 256 bytes).
Never a pass/fail test.

PostgreSQL from TAGWARDEN_BENCH_POSTGRES_URL or TAGWARDEN_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid as uuidlib
from datetime import timedelta

from sqlalchemy import insert, text

from tagwarden.config import Settings
from tagwarden.db import make_engine, utcnow
from tagwarden.devices.index import DeviceIndex
from tagwarden.devices.models import Device
from tagwarden.migrations import upgrade

BARE = "/bench/bare"
BARE_FIRST = "/bench/bare-first"


def _key(i: int) -> str:
    return f"twd_bench_{i}"


def _uuid(i: int) -> str:
    return f"dev-{i:07d}"


async def prepare(admin_url: str, devices: int, *, real_uuids: bool = False) -> str:
    """A fresh database with ``devices`` devices; ``real_uuids`` names them as devices name
    themselves (36-character UUIDs), which is what the index's memory is measured with."""
    name = f"tagwarden_bench_{uuidlib.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    await upgrade(engine)
    then = utcnow() - timedelta(hours=1)

    def row(i: int) -> dict[str, object]:
        name = str(uuidlib.uuid4()) if real_uuids else _uuid(i)
        return {
            "uuid": name,
            "name": name,
            "architecture": "amd64",
            "labels": {},
            "key_hash": hashlib.sha256(_key(i).encode()).hexdigest(),
            "key_prefix": _key(i)[:10],
            "state_version": 1,
            "fast_poll": False,
            "created_at": then,
            "updated_at": then,
            # A fleet at rest: not every device's state changed in the last few seconds (which
            # each replica's device index would re-read on every refresh until the overlap ends).
            "state_changed_at": then,
        }

    async with engine.begin() as conn:
        for start in range(0, devices, 10_000):
            chunk = [row(i) for i in range(start, min(devices, start + 10_000))]
            await conn.execute(insert(Device), chunk)
        await conn.execute(text("ANALYZE devices"))
    await engine.dispose()
    return url


async def drop(admin_url: str, url: str) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    await admin.dispose()


def serve(url: str, port: int) -> None:
    """The server process: the real app plus the bare endpoint."""
    import uvicorn
    from fastapi.responses import JSONResponse

    from tagwarden.app import create_app

    settings = Settings(
        database_url=url,
        monitor_enabled=False,
        rollout_worker_enabled=False,
        log_level="WARNING",
    )
    app = create_app(settings, freeze_gc=True)  # as `tagwarden serve` does

    @app.get(BARE_FIRST, include_in_schema=False)
    async def bare_first() -> JSONResponse:
        return JSONResponse({"apps": {}, "poll_interval": 60})

    app.router.routes.insert(0, app.router.routes.pop())  # first: routing costs it nothing

    @app.get(BARE, include_in_schema=False)
    async def bare() -> JSONResponse:
        return JSONResponse({"apps": {}, "poll_interval": 60})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def load(
    port: int, paths: list[tuple[bytes, bytes]], seconds: float, connections: int
) -> tuple[int, list[float], dict[int, int]]:
    """Requests per second over ``seconds`` with ``connections`` keep-alive connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                path, extra = random.choice(paths)
                request = b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n" + extra + b"\r\n"
                started = time.perf_counter()
                status = await _one(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), latencies, statuses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def report(name: str, count: int, latencies: list[float], seconds: float) -> tuple[float, float]:
    rate = count / seconds
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(f"{name:<26} {rate:>9,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    return rate, p99


async def measure(port: int, devices: int, seconds: float, connections: int, rounds: int) -> None:
    polls = [
        (
            f"/api/v1/device/{_uuid(i)}/state".encode(),
            f'Authorization: Bearer {_key(i)}\r\nIf-None-Match: "1.60"\r\n'.encode(),
        )
        for i in range(devices)
    ]
    runs = {
        "bare endpoint": [(BARE.encode(), b"")],
        "bare endpoint, routed first": [(BARE_FIRST.encode(), b"")],
        "conditional poll (304)": polls,
    }
    for paths in runs.values():  # warm-up: pool, caches, the index's first load
        await load(port, paths, 2 if paths is polls else 1, connections)
    counts = dict.fromkeys(runs, 0)
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, paths in runs.items():
            count, lat, statuses = await load(port, paths, seconds / rounds, connections)
            counts[name] += count
            latencies[name] += lat
            if paths is polls and set(statuses) != {304}:
                print(f"  unexpected statuses: {statuses}")
    figures = {name: report(name, counts[name], latencies[name], seconds) for name in runs}
    poll_rate, poll_p99 = figures["conditional poll (304)"]
    for name in ("bare endpoint", "bare endpoint, routed first"):
        rate, p99 = figures[name]
        print(
            f"poll / {name}: throughput {poll_rate / rate:.2f} (target ≥ 0.9), "
            f"p99 {poll_p99 / p99:.2f} (target ≤ 1.5)"
        )
    print(f"{poll_rate:,.0f} polls/s (target ≥ 1,200)")


async def index_scale(admin_url: str, devices: int) -> None:
    """The device index over ``devices`` devices: full load time and memory per device."""
    print(f"preparing {devices:,} devices for the index …")
    url = await prepare(admin_url, devices, real_uuids=True)
    engine = make_engine(url)
    try:
        index = DeviceIndex(engine)
        rss = _rss()
        started = time.perf_counter()
        await index.load()
        took = time.perf_counter() - started
        per_device = index.footprint() / len(index)
        grew = (_rss() - rss) / len(index)
        print(
            f"device index, {len(index):,} devices: full load {took:.2f} s (target ≤ 10 s), "
            f"{per_device:.0f} bytes per device (target ≤ 256; the process grew by "
            f"{grew:.0f} bytes per device)"
        )
    finally:
        await engine.dispose()
        await drop(admin_url, url)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the endpoints")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--index-devices", type=int, default=1_000_000, help="0: skip")
    args = parser.parse_args()
    admin_url = os.environ.get("TAGWARDEN_BENCH_POSTGRES_URL") or os.environ.get(
        "TAGWARDEN_TEST_POSTGRES_URL"
    )
    if not admin_url:
        print("device_state: set TAGWARDEN_BENCH_POSTGRES_URL to run (needs PostgreSQL); skipped")
        return
    admin_url = Settings(database_url=admin_url).database_url
    if args.devices:
        print(f"preparing {args.devices:,} devices in PostgreSQL …")
        url = await prepare(admin_url, args.devices)
        port = _free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", url, str(port)])  # noqa: ASYNC220 - started once, before any load
        try:
            await _wait(port)
            await measure(port, args.devices, args.seconds, args.connections, args.rounds)
        finally:
            server.terminate()
            server.wait(timeout=10)
            await drop(admin_url, url)
    if args.index_devices:
        await index_scale(admin_url, args.index_devices)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(main())
