"""A simulated fleet: devices that register, poll with ETags, "pull" and report.

Used by ``tagwarden simulate-fleet``, the demo, tests (in-process through httpx's ASGI transport)
and benchmarks. Randomness is seeded, so a run with the same seed fails the same devices.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tagwarden.devices.states import AppHealth, AppStatus, FailureReason

# What a simulated pull fails with: the failures of a real device, not the monitor's verdicts.
FAILURE_REASONS = (FailureReason.PULL_FAILED, FailureReason.DISK_FULL, FailureReason.CRASHLOOP)


@dataclass
class SimulatedDevice:
    uuid: str
    key: str
    architecture: str
    etag: str | None = None
    poll_interval: float = 60.0
    running: dict[str, str] = field(default_factory=dict)  # app → digest it runs
    failed: dict[str, str] = field(default_factory=dict)  # app → digest it failed to run

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class FleetStats:
    polls: int = 0
    not_modified: int = 0
    updates: int = 0
    failures: int = 0
    errors: int = 0


class FleetSimulator:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        admin_headers: dict[str, str],
        fail_rate: float = 0.0,
        architectures: tuple[str, ...] = ("amd64",),
        labels: dict[str, str] | None = None,
        prefix: str | None = None,
        seed: int | None = None,
        concurrency: int = 64,
    ) -> None:
        self.client = client
        self.admin_headers = admin_headers
        self.fail_rate = fail_rate
        self.architectures = architectures
        self.labels = labels or {}
        self.prefix = prefix or f"sim-{secrets.token_hex(2)}"
        self.random = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self.devices: list[SimulatedDevice] = []
        self.stats = FleetStats()
        self._gate = asyncio.Semaphore(concurrency)

    async def register(self, count: int) -> list[SimulatedDevice]:
        start = len(self.devices)
        for i in range(start, start + count):
            arch = self.architectures[i % len(self.architectures)]
            uuid = f"{self.prefix}-{i:05d}"
            response = await self.client.post(
                "/api/v1/devices",
                json={"uuid": uuid, "name": uuid, "architecture": arch, "labels": self.labels},
                headers=self.admin_headers,
            )
            response.raise_for_status()
            self.devices.append(SimulatedDevice(uuid, response.json()["device_key"], arch))
        return self.devices[start:]

    async def poll(self, device: SimulatedDevice) -> None:
        """One poll; on a new target, "pull" it and report running (or a failure)."""
        async with self._gate:
            headers = device.headers | ({"If-None-Match": device.etag} if device.etag else {})
            try:
                response = await self.client.get(
                    f"/api/v1/device/{device.uuid}/state", headers=headers
                )
            except httpx.HTTPError:
                self.stats.errors += 1
                return
            self.stats.polls += 1
            device.poll_interval = float(response.headers.get("x-poll-interval", 60))
            if response.status_code == 304:
                self.stats.not_modified += 1
                return
            if response.status_code != 200:
                self.stats.errors += 1
                return
            device.etag = response.headers.get("etag")
            await self._apply(device, response.json()["apps"])

    async def _apply(self, device: SimulatedDevice, apps: dict[str, Any]) -> None:
        reports: dict[str, Any] = {}
        for name, target in apps.items():
            digest = target["digest"]
            if device.running.get(name) == digest or device.failed.get(name) == digest:
                continue
            if self.random.random() < self.fail_rate:
                device.failed[name] = digest
                self.stats.failures += 1
                reports[name] = {
                    "image": target["image"],
                    "status": AppStatus.FAILED,
                    "health": AppHealth.UNKNOWN,
                    "reason": self.random.choice(FAILURE_REASONS),
                    "message": "simulated failure",
                }
            else:
                device.running[name] = digest
                device.failed.pop(name, None)
                self.stats.updates += 1
                reports[name] = {
                    "image": target["image"],
                    "status": AppStatus.RUNNING,
                    "health": AppHealth.HEALTHY,
                }
        if reports:
            try:
                response = await self.client.patch(
                    f"/api/v1/device/{device.uuid}/state",
                    json={"apps": reports},
                    headers=device.headers,
                )
                reported = response.status_code == 200
            except httpx.HTTPError:  # the server went away mid-report (a replica killed)
                reported = False
            if not reported:
                self.stats.errors += 1
                # As an agent would: the report is not lost, the next poll fetches the state
                # again (no ETag) and reports it again.
                device.etag = None
                for name in reports:
                    device.running.pop(name, None)
                    device.failed.pop(name, None)

    async def poll_all(self) -> None:
        await asyncio.gather(*(self.poll(d) for d in self.devices))

    def running_counts(self, app: str) -> Counter[str]:
        """How many devices run which digest of ``app`` (``-`` for none, ``failed``)."""
        counts: Counter[str] = Counter()
        for device in self.devices:
            if app in device.failed:
                counts[AppStatus.FAILED] += 1
            else:
                counts[device.running.get(app, "-")] += 1
        return counts
