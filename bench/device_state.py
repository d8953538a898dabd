"""Benchmark: the device state endpoint under conditional polls (issue 4's targets).

With DEVICES devices (default 100,000) in a fresh PostgreSQL database, one uvicorn server process
serves both ``GET /api/v1/device/{uuid}/state`` and a bare endpoint returning a constant JSON on
the same app (same middleware, same stack). A load generator in this process, not the server's
(raw keep-alive HTTP/1.1 on asyncio, so the client is not the bottleneck), drives both endpoints
with the same connections: it polls random devices with ``If-None-Match`` and prints polls/s,
p50/p99 latency and the ratio against the bare endpoint. Unchanged polls are answered from the
server's device index (devices/index.py), which the warm-up gives time to load.
Targets: ≥ 1,200 conditional polls/s and a ratio ≥ 0.6. Never a pass/fail test.

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
from tagwarden.devices.models import Device
from tagwarden.migrations import upgrade

BARE = "/bench/bare"


def _key(i: int) -> str:
    return f"twd_bench_{i}"


async def prepare(admin_url: str, devices: int) -> str:
    name = f"tagwarden_bench_{uuidlib.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    await upgrade(engine)
    now = utcnow()
    rows = [
        {
            "uuid": f"dev-{i:07d}",
            "name": f"dev-{i:07d}",
            "architecture": "amd64",
            "labels": {},
            "key_hash": hashlib.sha256(_key(i).encode()).hexdigest(),
            "key_prefix": _key(i)[:10],
            "state_version": 1,
            "fast_poll": False,
            "created_at": now - timedelta(hours=1),
            "updated_at": now - timedelta(hours=1),
            # A fleet at rest: not every device's state changed in the last few seconds (which
            # each replica's device index would re-read on every refresh until the overlap ends).
            "state_changed_at": now - timedelta(hours=1),
        }
        for i in range(devices)
    ]
    async with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            await conn.execute(insert(Device), rows[start : start + 10_000])
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
    app = create_app(settings)

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


def report(name: str, count: int, latencies: list[float], seconds: float) -> float:
    rate = count / seconds
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(f"{name:<22} {rate:>9,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    admin_url = os.environ.get("TAGWARDEN_BENCH_POSTGRES_URL") or os.environ.get(
        "TAGWARDEN_TEST_POSTGRES_URL"
    )
    if not admin_url:
        print("device_state: set TAGWARDEN_BENCH_POSTGRES_URL to run (needs PostgreSQL); skipped")
        return
    admin_url = Settings(database_url=admin_url).database_url
    print(f"preparing {args.devices:,} devices in PostgreSQL …")
    url = await prepare(admin_url, args.devices)
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", url, str(port)])  # noqa: ASYNC220 - started once, before any load
    try:
        await _wait(port)
        polls = [
            (
                f"/api/v1/device/dev-{i:07d}/state".encode(),
                f'Authorization: Bearer {_key(i)}\r\nIf-None-Match: "1.60"\r\n'.encode(),
            )
            for i in range(args.devices)
        ]
        bare = [(BARE.encode(), b"")]
        await load(port, polls, 2, args.connections)  # warm-up: pool, caches, JIT-less paths
        await load(port, bare, 1, args.connections)
        results: dict[str, float] = {}
        for name, paths in (("bare endpoint", bare), ("conditional poll (304)", polls)):
            count, latencies, statuses = await load(port, paths, args.seconds, args.connections)
            results[name] = report(name, count, latencies, args.seconds)
            if name != "bare endpoint" and set(statuses) != {304}:
                print(f"  unexpected statuses: {statuses}")
        ratio = results["conditional poll (304)"] / results["bare endpoint"]
        print(f"ratio poll / bare: {ratio:.2f}  (targets: ≥ 1,200 polls/s, ratio ≥ 0.6)")
    finally:
        server.terminate()
        server.wait(timeout=10)
        await drop(admin_url, url)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(main())
