"""Soak: three `tagwarden serve` replicas on one PostgreSQL, a fleet, a rollout, and a SIGKILL.

The fake registry (in this process, on loopback) holds IMAGES images that keep gaining tags; a
rule per image approves every new tag, so each scan makes requests, approvals, activations and
outbox events. An outbox receiver (a loopback HTTP server) counts deliveries by idempotency key.
Simulated devices are spread over the replicas, each polling its own replica. Midway through the
rollout one replica is killed with SIGKILL and started again on its port. Printed: duplicate
approval requests (target 0), events emitted / delivered / delivered twice, the rollout's
outcome, devices converged, polls/s per replica and the polls' p99. Bounded by --deadline.

The short version (3 replicas, 500 devices, one kill) is tests/integration/test_fleet_soak.py.
PostgreSQL from TAGWARDEN_BENCH_POSTGRES_URL or TAGWARDEN_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import multiprocessing
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.auth import service as auth
from tagwarden.config import Settings
from tagwarden.db import make_engine, make_sessionmaker, utcnow
from tagwarden.devices.models import Device
from tagwarden.devices.simulator import FleetSimulator, SimulatedDevice
from tagwarden.migrations import upgrade
from tagwarden.notify.models import NotificationDelivery, NotificationEvent
from tagwarden.notify.senders import IDEMPOTENCY_HEADER
from tagwarden.rollouts.states import ADVANCING
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import demo_environment, running

NAMESPACE = "soak"
APP = "app-0"  # the image rolled out
LABELS = {"fleet": "soak"}

# The rollout's options, in one place: a continuous rollout (closed by the soak once the kill is
# behind it), a rate and a failure share to abort on, beside the canary and the batches.
BASE_OPTIONS: dict[str, Any] = {
    "canary_count": 5,
    "bake_seconds": 1,
    # Per device, from its scheduling: a batch of the whole fleet is told over one pass of
    # the replicas' polls, which on a loaded 2-core machine is longer than 3 minutes.
    "health_timeout": 300,
    "max_failures": "5%",
    "continuous": True,
    "abort": {"failure_percent": 10, "min_devices": 50},
}


def rollout_options(devices: int, batches: int) -> dict[str, Any]:
    """Batches over the fleet, and a rate: twice the fleet a minute, enforced on every step
    but never what holds a batch back (a lower one would measure the rate, not the replicas)."""
    batch = max(1, -(-devices // batches))
    return BASE_OPTIONS | {"batch_size": batch, "max_per_minute": 2 * devices}


@dataclass
class SoakConfig:
    admin_url: str  # a PostgreSQL URL whose server may CREATE DATABASE
    devices: int = 10_000
    images: int = 200
    replicas: int = 3
    deadline_seconds: float = 300.0
    batches: int = 2  # after the canary; each batch waits for its last device's next poll
    poll_seconds: int = 5  # a device's interval
    active_poll_seconds: int = 2  # while in an active batch
    client_processes: int = 0  # the fleet's client processes; 0: one per replica
    verbose: bool = True


@dataclass
class SoakResult:
    duplicate_requests: int = 0
    events_emitted: int = 0
    events_delivered: int = 0
    delivered_twice: int = 0
    lost_events: int = 0
    rollout_status: str = ""
    rollout_closed: bool = False  # the continuous rollout closed to new devices
    rollout_options: dict[str, Any] = field(default_factory=dict)
    devices_converged: int = 0
    devices: int = 0
    polls_per_second: list[float] = field(default_factory=list)
    poll_errors: list[int] = field(default_factory=list)
    p99_ms: float = 0.0
    p99_per_replica_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    killed_at: float = 0.0
    kill_moment: float = 0.0  # time.monotonic() at the SIGKILL
    # Delivery is at least once: the deliveries the killed replica had claimed and sent, but not
    # yet recorded, are sent again once their lease runs out, with the same idempotency key.
    repeated_across_kill: int = 0  # first delivered before the kill, again after it
    repeated_otherwise: int = 0  # any other repeat (target 0)
    phases: dict[str, float] = field(default_factory=dict)  # where the time went, seconds
    converged_per_replica: list[int] = field(default_factory=list)  # who holds a batch back

    def lines(self) -> list[str]:
        rates = ", ".join(f"{r:,.0f}" for r in self.polls_per_second)
        return [
            f"duplicate approval requests: {self.duplicate_requests} (target 0)",
            f"events: {self.events_emitted} emitted, {self.events_delivered} delivered, "
            f"{self.lost_events} lost, {self.delivered_twice} delivered twice (targets: all, 0): "
            f"{self.repeated_across_kill} sent before the kill and again after it (at least "
            f"once, same idempotency key), {self.repeated_otherwise} otherwise (target 0)",
            f"rollout: {self.rollout_status} (target completed), "
            f"{'closed' if self.rollout_closed else 'never closed'}; options "
            + json.dumps(self.rollout_options, sort_keys=True),
            f"devices converged: {self.devices_converged} of {self.devices}",
            f"polls/s per replica: {rates}; poll errors per replica (the killed one's while "
            f"down): {', '.join(map(str, self.poll_errors))}",
            f"poll p99 per replica: {', '.join(f'{p:,.1f}' for p in self.p99_per_replica_ms)} ms; "
            f"all: {self.p99_ms:,.1f} ms; replica 2 killed at {self.killed_at:.0f} s; "
            f"{self.seconds:.0f} s in all",
            "devices converged per replica's share: "
            + ", ".join(f"{n:,}" for n in self.converged_per_replica),
            "phases: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.phases.items()),
        ]


# -- the outbox receiver -----------------------------------------------------------------------


class Receiver:
    """A loopback webhook endpoint: deliveries counted by idempotency key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}  # key → time.monotonic() of each delivery
        lock = threading.Lock()
        keys, arrivals = self.keys, self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get(IDEMPOTENCY_HEADER) or "-"
                with lock:
                    keys[key] += 1
                    arrivals.setdefault(key, []).append(time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.server.shutdown()
            self.server.server_close()


# -- replicas ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, number: int, env: dict[str, str], log_dir: Path) -> None:
        self.number = number
        self.port = _free_port()
        self.env = env | {"TAGWARDEN_PORT": str(self.port)}
        self.log = log_dir / f"replica-{number}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "tagwarden"), "serve", "--no-migrate"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def ready(self, client: httpx.AsyncClient, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"replica {self.number} exited: see {self.log}")
            try:
                if (await client.get(f"{self.url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"replica {self.number} did not start: see {self.log}")


def replica_env(database_url: str, registry_url: str, config: SoakConfig) -> dict[str, str]:
    """Short intervals, every worker on: each replica monitors, rolls out and delivers."""
    settings = {
        "TAGWARDEN_DATABASE_URL": database_url,
        "TAGWARDEN_DOCKERHUB_REGISTRY_URL": registry_url,
        "TAGWARDEN_LOG_LEVEL": "WARNING",
        "TAGWARDEN_MONITOR_ENABLED": "true",
        "TAGWARDEN_CHECK_INTERVAL_MINUTES": "1",
        "TAGWARDEN_ROLLOUT_WORKER_ENABLED": "true",
        "TAGWARDEN_ROLLOUT_TICK_SECONDS": "0.5",
        "TAGWARDEN_DEVICE_POLL_INTERVAL_SECONDS": str(config.poll_seconds),
        "TAGWARDEN_DEVICE_ACTIVE_POLL_INTERVAL_SECONDS": str(config.active_poll_seconds),
        "TAGWARDEN_DEVICE_LAST_SEEN_FLUSH_SECONDS": "1",
        "TAGWARDEN_OUTBOX_POLL_SECONDS": "0.5",
        "TAGWARDEN_OUTBOX_BACKOFF_SECONDS": "0.5",
        "TAGWARDEN_OUTBOX_BACKOFF_MAX_SECONDS": "2",
        # Longer than any delivery takes on a loaded machine: a lease that runs out while its
        # delivery is still under way is a second delivery. A killed replica's leases run out.
        "TAGWARDEN_OUTBOX_LEASE_SECONDS": "20",
        "TAGWARDEN_MONITOR_LEASE_SECONDS": "10",
        "TAGWARDEN_RULES_TICK_SECONDS": "1",
    }
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TAGWARDEN_")}
    return keep | settings | demo_environment(registry_url)


# -- the database ------------------------------------------------------------------------------


async def create_database(admin_url: str) -> tuple[str, str]:
    """A fresh database, migrated, and an admin token for the soak."""
    name = f"tagwarden_soak_{uuidlib.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session, session.begin():
            _, token = await auth.create_token(
                session, name="soak", role="admin", identity="soak@example.com", actor="soak"
            )
    finally:
        await engine.dispose()
    return url, token


async def drop_database(admin_url: str, url: str) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    await admin.dispose()


def _device_uuid(n: int) -> str:
    return f"soak-{n:06d}"


async def register_devices(url: str, devices: int) -> list[str]:
    """The fleet, written in bulk: registering 10,000 devices one request at a time is not
    what this measures. The keys are returned; the database keeps their hashes, as the API
    does (and every replica's device index learns them at its next refresh)."""
    keys = [f"twd_soak_{secrets.token_urlsafe(24)}" for _ in range(devices)]
    rows = [
        {
            "uuid": _device_uuid(n),
            "name": _device_uuid(n),
            "architecture": "amd64",
            "labels": LABELS,
            "key_hash": auth.hash_token(key),
            "key_prefix": key[:10],
            # Online from the start, as a fleet that was running before the soak: the planner
            # skips a device it has never seen.
            "last_seen_at": utcnow(),
        }
        for n, key in enumerate(keys)
    ]
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for start in range(0, len(rows), 5_000):
                await conn.execute(insert(Device), rows[start : start + 5_000])
    finally:
        await engine.dispose()
    return keys


async def outcome_from_database(url: str, result: SoakResult, receiver: Receiver) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            per_tag = (
                select(func.count().label("n"))
                .select_from(ApprovalRequest)
                .group_by(ApprovalRequest.image_id, ApprovalRequest.tag_name)
                .subquery()
            )
            result.duplicate_requests = int(
                await conn.scalar(select(func.coalesce(func.sum(per_tag.c.n - 1), 0))) or 0
            )
            keys = (
                await conn.scalars(
                    select(NotificationEvent.key).join(
                        NotificationDelivery, NotificationDelivery.event_id == NotificationEvent.id
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    emitted = set(keys)
    result.events_emitted = len(emitted)
    result.events_delivered = len(emitted & set(receiver.keys))
    result.lost_events = len(emitted - set(receiver.keys))
    repeated = [k for k in emitted if receiver.keys[k] > 1]
    result.delivered_twice = len(repeated)
    kill = result.kill_moment
    result.repeated_across_kill = sum(
        1 for k in repeated if min(receiver.arrivals[k]) < kill <= max(receiver.arrivals[k])
    )
    result.repeated_otherwise = result.delivered_twice - result.repeated_across_kill


# -- the run -----------------------------------------------------------------------------------


class PollTimer:
    """httpx hooks that time each device poll."""

    def __init__(self) -> None:
        self.latencies: list[float] = []

    async def request(self, request: httpx.Request) -> None:
        request.extensions["soak_started"] = time.perf_counter()

    async def response(self, response: httpx.Response) -> None:
        if response.request.method == "GET":
            started = response.request.extensions["soak_started"]
            self.latencies.append(time.perf_counter() - started)


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:500]}")  # fmt: skip
    return response.json()


class Soak:
    def __init__(self, config: SoakConfig, fake: FakeRegistry, token: str) -> None:
        self.config = config
        self.fake = fake
        self.admin = {"Authorization": f"Bearer {token}"}
        self.random = random.Random(16)
        self.tags_pushed = dict.fromkeys(range(config.images), 3)
        self.started = time.monotonic()
        self.image_ids: list[int] = []
        self.clients: list[httpx.AsyncClient] = []  # one per replica, set by the driver
        self.phases: dict[str, float] = {}  # phase → seconds it took

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = time.monotonic() - began

    def say(self, line: str) -> None:
        if self.config.verbose:
            print(f"  {time.monotonic() - self.started:6.1f}s  {line}", flush=True)

    def push_tags(self, count: int, only: int | None = None) -> list[int]:
        """New tags upstream: on image number ``only``, or on ``count`` random ones."""
        names = range(self.config.images)
        touched = [only] if only is not None else self.random.sample(names, count)
        for n in touched:
            self.fake.model.push_tag(f"{NAMESPACE}/app-{n}", f"1.0.{self.tags_pushed[n]}")
            self.tags_pushed[n] += 1
        return touched

    async def scan(self, clients: list[httpx.AsyncClient]) -> None:
        """Every replica scans at once: claims must keep any image from being checked twice."""
        await asyncio.gather(
            *(c.post("/api/v1/images/monitor/trigger", headers=self.admin) for c in clients),
            return_exceptions=True,
        )

    async def check(self, clients: list[httpx.AsyncClient], touched: list[int]) -> None:
        """The images that gained a tag, checked by every replica at the same moment (as
        webhooks fanned out to all of them would): one request per new tag all the same."""
        await asyncio.gather(
            *(
                c.post(f"/api/v1/images/{self.image_ids[n]}/check", headers=self.admin)
                for n in touched
                for c in clients
            ),
            return_exceptions=True,
        )

    async def set_up(self, client: httpx.AsyncClient, receiver: Receiver) -> int:
        """The outbox channel, the images and their rules; the rolled-out image's id."""
        _ok(
            await client.post(
                "/api/v1/notifications/channels",
                json={
                    "name": "soak",
                    "kind": "webhook",
                    "config": {"url": receiver.url},
                    "events": ["*"],
                },
                headers=self.admin,
            )
        )
        # The images and their rules, made concurrently over every replica: made one request
        # after another they took 80-100 s of a loaded machine, before the soak began.
        gate = asyncio.Semaphore(12)
        clients = self.clients or [client]

        async def add(n: int) -> int:
            c = clients[n % len(clients)]
            async with gate:
                image = _ok(
                    await c.post(
                        "/api/v1/images",
                        json={
                            "image_name": f"app-{n}",
                            "namespace": NAMESPACE,
                            "watch_for_updates": True,
                        },
                        headers=self.admin,
                    )
                )
                _ok(
                    await c.post(
                        f"/api/v1/images/{image['id']}/rules",
                        json={"name": "every release", "kind": "regex", "pattern": r"[0-9.]+"},
                        headers=self.admin,
                    )
                )
            return int(image["id"])

        self.image_ids = list(await asyncio.gather(*(add(n) for n in range(self.config.images))))
        return self.image_ids[0]

    async def wait_for_tag(self, client: httpx.AsyncClient, image_id: int, tag: str) -> None:
        """Until the tag is deployable (the rule approved it, activation made its rows)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            tags = _ok(await client.get(f"/api/v1/images/{image_id}/tags", headers=self.admin))
            if any(t["tag"] == tag for t in tags):
                return
            await self.check([client], [0])
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{NAMESPACE}/{APP}:{tag} never became deployable")


# -- the fleet's client processes -------------------------------------------------------------


def p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000 if ordered else 0.0


@dataclass
class ShareResult:
    """What one client process saw of its share of the fleet."""

    replica: int  # index into the replicas
    polls: int
    errors: int
    seconds: float
    latencies: list[float]
    running: Counter[str]  # digest of APP → devices running it


@dataclass
class Share:
    """A share of the fleet, polled by one client process from its replica."""

    replica: int
    url: str
    devices: list[tuple[str, str]]  # (uuid, key)
    poll_seconds: int
    seed: int


async def _poll_share(share: Share, stop: Any) -> ShareResult:
    """Each device polls on its own schedule (the interval its last answer gave, X-Poll-
    Interval), earliest due first: a device in an active batch polls fast while the others
    keep their slow interval. Until ``stop`` (a multiprocessing event) is set."""
    timer = PollTimer()
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [timer.request],
        "response": [timer.response],
    }
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    rand = random.Random(share.seed)
    async with httpx.AsyncClient(
        base_url=share.url, timeout=30, limits=limits, event_hooks=hooks
    ) as client:
        fleet = FleetSimulator(client, admin_headers={}, seed=share.seed)
        fleet.devices = [
            SimulatedDevice(uuid, key, "amd64", poll_interval=float(share.poll_seconds))
            for uuid, key in share.devices
        ]
        # First polls spread over one interval, as a fleet that was already running.
        due = [(rand.uniform(0, share.poll_seconds), i) for i in range(len(fleet.devices))]
        heapq.heapify(due)
        began = time.monotonic()

        async def worker() -> None:
            while not stop.is_set():
                if not due:  # fewer devices than workers
                    await asyncio.sleep(0.2)
                    continue
                when, i = heapq.heappop(due)
                wait = began + when - time.monotonic()
                if wait > 0:
                    heapq.heappush(due, (when, i))
                    await asyncio.sleep(min(wait, 0.2))
                    continue
                device = fleet.devices[i]
                await fleet.poll(device)
                heapq.heappush(due, (time.monotonic() - began + device.poll_interval, i))

        await asyncio.gather(*(worker() for _ in range(64)))
        return ShareResult(
            replica=share.replica,
            polls=fleet.stats.polls,
            errors=fleet.stats.errors,
            seconds=time.monotonic() - began,
            latencies=timer.latencies,
            running=Counter(d.running.get(APP, "-") for d in fleet.devices),
        )


def _client_process(share: Share, stop: Any, results: Any) -> None:
    results.put(asyncio.run(_poll_share(share, stop)))


class Fleet:
    """The simulated fleet in ``processes`` client processes, process i polling replica
    i mod replicas: one process cannot poll 10,000 devices as often as they ask."""

    def __init__(self, urls: list[str], keys: list[str], processes: int, poll_seconds: int):
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.stop = context.Event()
        self.results: Any = context.Queue()
        self.processes = []
        for p in range(processes):
            share = Share(
                replica=p % len(urls),
                url=urls[p % len(urls)],
                devices=[(_device_uuid(n), keys[n]) for n in range(p, len(keys), processes)],
                poll_seconds=poll_seconds,
                seed=p,
            )
            self.processes.append(
                context.Process(target=_client_process, args=(share, self.stop, self.results))
            )
        for process in self.processes:
            process.start()

    async def finish(self) -> list[ShareResult]:
        """Stop polling; each process's figures."""
        self.stop.set()
        shares = [await asyncio.to_thread(self.results.get, True, 60) for _ in self.processes]
        for process in self.processes:
            await asyncio.to_thread(process.join, 10)
        return shares

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join()


async def run_soak(config: SoakConfig) -> SoakResult:
    """One soak, from an empty database to its figures (the database is dropped after)."""
    url, token = await create_database(config.admin_url)
    fake = FakeRegistry()
    for n in range(config.images):
        fake.model.add_repository(f"{NAMESPACE}/app-{n}", 3, tag_names=lambda i: f"1.0.{i}")
    receiver = Receiver()
    log_dir = Path(os.environ.get("TAGWARDEN_SOAK_LOGS", "/tmp"))  # noqa: S108 - logs only
    replicas: list[Replica] = []
    try:
        with running(fake) as registry_url, receiver.running():
            env = replica_env(url, registry_url, config)
            replicas = [Replica(i + 1, env, log_dir) for i in range(config.replicas)]
            for replica in replicas:
                replica.start()
            return await _drive(config, fake, token, replicas, receiver, url)
    finally:
        for replica in replicas:
            replica.stop()
        await drop_database(config.admin_url, url)


async def _drive(
    config: SoakConfig,
    fake: FakeRegistry,
    token: str,
    replicas: list[Replica],
    receiver: Receiver,
    url: str,
) -> SoakResult:
    soak = Soak(config, fake, token)
    result = SoakResult(devices=config.devices)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    clients = [httpx.AsyncClient(base_url=r.url, timeout=30, limits=limits) for r in replicas]
    fleet: Fleet | None = None
    try:
        for replica, client in zip(replicas, clients, strict=True):
            await replica.ready(client)
        soak.clients = clients
        soak.say(f"{len(replicas)} replicas up; adding {config.images} images with rules")
        with soak.phase("images and rules"):
            image_id = await soak.set_up(clients[0], receiver)
        # The first scan (every image's first tags, requested and approved by rules) runs while
        # the fleet is registered and app-0 gains its deployable tag: done before the rollout.
        first_scan = asyncio.create_task(soak.scan(clients))
        with soak.phase("fleet registered and started"):
            keys = await register_devices(url, config.devices)
            processes = config.client_processes or len(replicas)
            fleet = Fleet([r.url for r in replicas], keys, processes, config.poll_seconds)
        soak.say(f"{config.devices} devices registered, polling from {processes} processes")
        with soak.phase("first deployable tag"):
            await soak.check(clients, soak.push_tags(0, only=0))
            tag = f"1.0.{soak.tags_pushed[0] - 1}"
            await soak.wait_for_tag(clients[0], image_id, tag)
        with soak.phase("first scan (rest)"):
            await first_scan
        options = rollout_options(config.devices, config.batches)
        body = {
            "image_id": image_id,
            "tag": tag,
            "selector": LABELS,
            "strategy": "canary",
            "options": options,
        }
        rollout = _ok(await clients[0].post("/api/v1/rollouts", json=body, headers=soak.admin))
        soak.say(f"rollout {rollout['id']} of {APP}:{tag}, {rollout['batch_count']} batches")
        with soak.phase("rollout"):
            result.rollout_status = await _follow(soak, clients, replicas, rollout["id"], result)
        with soak.phase("fleet stopped"):
            shares = await fleet.finish()
        with soak.phase("outbox drained"):
            await _drain(soak, clients[0], url)
        result.phases = soak.phases
        result.seconds = time.monotonic() - soak.started
        _fleet_figures(result, shares, len(replicas))
        final = await _rollout(soak, clients[0], rollout["id"])
        digest = final["digest"]
        result.rollout_closed = final["closed_at"] is not None
        result.rollout_options = options
        result.devices_converged = sum(share.running[digest] for share in shares)
        result.converged_per_replica = [
            sum(s.running[digest] for s in shares if s.replica == r) for r in range(len(replicas))
        ]
        await outcome_from_database(url, result, receiver)
        return result
    finally:
        if fleet is not None:
            fleet.kill()
        for client in clients:
            await client.aclose()


def _fleet_figures(result: SoakResult, shares: list[ShareResult], replicas: int) -> None:
    """Polls/s, errors and p99 per replica, from the processes that polled it."""
    for r in range(replicas):
        mine = [share for share in shares if share.replica == r]
        seconds = max((share.seconds for share in mine), default=1.0)
        result.polls_per_second.append(sum(share.polls for share in mine) / seconds)
        result.poll_errors.append(sum(share.errors for share in mine))
        result.p99_per_replica_ms.append(p99_ms([t for share in mine for t in share.latencies]))
    result.p99_ms = p99_ms([t for share in shares for t in share.latencies])


async def _rollout(soak: Soak, client: httpx.AsyncClient, rollout_id: int) -> dict[str, Any]:
    rollout: dict[str, Any] = _ok(
        await client.get(f"/api/v1/rollouts/{rollout_id}", headers=soak.admin)
    )
    return rollout


async def _follow(
    soak: Soak,
    clients: list[httpx.AsyncClient],
    replicas: list[Replica],
    rollout_id: int,
    result: SoakResult,
) -> str:
    """Tags keep arriving while the rollout runs; the second replica is killed once a batch
    past the canary is under way, and started again."""
    deadline = soak.started + soak.config.deadline_seconds
    victim, killed, closed, last = replicas[1], False, False, ""
    while time.monotonic() < deadline:
        rollout = await _rollout(soak, clients[0], rollout_id)
        line = (
            f"rollout {rollout['status']}, batch {rollout['current_batch'] or 0}/"
            + str(rollout["batch_count"])
            + " "
            + json.dumps({k: v for k, v in rollout["counts"].items() if v})
        )
        if line != last:
            soak.say(line)
            last = line
        if rollout["status"] not in ADVANCING:
            return str(rollout["status"])
        if not killed and (rollout["current_batch"] or 0) >= 2:
            victim.kill()
            result.kill_moment = time.monotonic()
            result.killed_at = result.kill_moment - soak.started
            soak.say(f"replica {victim.number} killed (SIGKILL)")
            await asyncio.sleep(1.0)
            victim.start()
            await victim.ready(clients[1])
            soak.say(f"replica {victim.number} serving again")
            killed = True
        if not closed and killed:
            _ok(await clients[0].post(f"/api/v1/rollouts/{rollout_id}/close", headers=soak.admin))
            closed = True
        await soak.check(clients, soak.push_tags(max(1, soak.config.images // 50)))
        await asyncio.sleep(1.0)
    return "unfinished by the deadline"


async def _drain(soak: Soak, client: httpx.AsyncClient, url: str) -> None:
    """Until the outbox has nothing pending (bounded): every event had its chance."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _ok(await client.get("/api/v1/notifications/outbox", headers=soak.admin))
        if state["pending"] == 0:
            return
        await asyncio.sleep(0.5)
    soak.say("the outbox still had pending deliveries at the end")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds")
    # A device learns that its batch was targeted at its next poll: the interval bounds how
    # long each batch waits for its devices to ask.
    parser.add_argument("--poll-seconds", type=int, default=20)
    # A simulated device reports once, at the poll that tells it its target: polling faster
    # until the batch judges it only takes the replicas' turns from devices yet to learn theirs.
    parser.add_argument("--active-poll-seconds", type=int, default=20)
    parser.add_argument("--batches", type=int, default=1, help="batches after the canary")
    parser.add_argument(
        "--clients", type=int, default=0, help="client processes (default: one per replica)"
    )
    args = parser.parse_args()
    admin_url = os.environ.get("TAGWARDEN_BENCH_POSTGRES_URL") or os.environ.get(
        "TAGWARDEN_TEST_POSTGRES_URL"
    )
    if not admin_url:
        print("fleet_soak: set TAGWARDEN_BENCH_POSTGRES_URL to run (needs PostgreSQL); skipped")
        return
    config = SoakConfig(
        admin_url=Settings(database_url=admin_url).database_url,
        devices=args.devices,
        images=args.images,
        deadline_seconds=args.deadline,
        poll_seconds=args.poll_seconds,
        batches=args.batches,
        active_poll_seconds=args.active_poll_seconds,
        client_processes=args.clients,
    )
    print(f"soak: 3 replicas, {args.devices:,} devices, {args.images} images")
    result = await run_soak(config)
    for line in result.lines():
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
