"""The image monitor (seed 001's ImageMonitorService): a scheduler over due images.

Safe on many replicas: due images are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and their
``next_check_at`` is pushed forward in the same short transaction, so N replicas check each image
once per interval. Each image's check is its own unit of work: one bad image never stops a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.catalogue.models import Image
from tagwarden.config import Settings
from tagwarden.db import utcnow
from tagwarden.monitor import record, service
from tagwarden.registry.base import ImageNotFound, RegistryClient, RegistryError
from tagwarden.registry.factory import client_for, is_docker_hub, repository_path
from tagwarden.registry.transport import RegistryState

log = logging.getLogger("tagwarden.monitor")
IDLE_POLL = timedelta(seconds=60)  # how often an idle monitor looks for newly due images


@dataclass
class RunSummary:
    started_at: datetime
    finished_at: datetime | None = None
    images_checked: int = 0
    requests_created: int = 0
    errors: int = 0
    deferred_for_budget: int = 0
    results: list[service.CheckResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "imagesChecked": self.images_checked,
            "requestsCreated": self.requests_created,
            "errors": self.errors,
            "deferredForBudget": self.deferred_for_budget,
        }


class ImageMonitor:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        *,
        state: RegistryState | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_result: Callable[[service.CheckResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.http = http
        self.state = state or RegistryState()
        self.clock = clock
        self.on_result = on_result
        self.running = False
        self.last_run: RunSummary | None = None
        self.next_run_at: datetime | None = None
        self._wake = asyncio.Event()
        # SQLite has one writer; queueing writers here beats its busy handler's sleeps by far
        # when many checks finish at once. PostgreSQL needs no such queue.
        self._write_gate: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if settings.is_sqlite else contextlib.nullcontext()
        )

    # -- registries -------------------------------------------------------------------------
    def client(self, registry_host: str) -> RegistryClient:
        return client_for(registry_host, self.settings, self.http, state=self.state)

    def api_url(self, registry_host: str) -> str:
        if is_docker_hub(registry_host):
            return self.settings.dockerhub_api_url.rstrip("/")
        creds = self.settings.registries.get(registry_host)
        return (creds.url if creds else f"https://{registry_host}").rstrip("/")

    def listing_url(self, image: Image | service.Target) -> str:
        repo = repository_path(image.namespace, image.image_name, image.registry_host)
        if is_docker_hub(image.registry_host):
            return f"{self.api_url(image.registry_host)}/v2/repositories/{repo}/tags/"
        return f"{self.api_url(image.registry_host)}/v2/{repo}/tags/list"

    def budgets(self) -> dict[str, int | None]:
        """Remaining request budget per registry host, as the hosts last reported it."""
        return {host: limiter.remaining() for host, limiter in self.state.limits.hosts().items()}

    # -- one image ----------------------------------------------------------------------------
    async def check(
        self,
        image: int | service.Target,
        *,
        unchanged: list[tuple[service.Target, datetime]] | None = None,
    ) -> service.CheckResult:
        """Check one image: by id (a manual check) or as claimed by a scan.

        A scan passes ``unchanged``: a check that found nothing new is appended there and its
        schedule written with the others' at the end, instead of in a transaction of its own.
        """
        if isinstance(image, int):
            async with self.sessionmaker() as session:
                found = await session.get(Image, image)
                if found is None:
                    return service.CheckResult(image, f"#{image}", error="image not found")
                target = service.Target.of(found)
        else:
            target = image
        async with self.sessionmaker() as session:
            known = await service.load_known(session, target.id)
        name = target.display_name
        log.info("[ImageMonitor] Checking %s at %s", name, self.listing_url(target))
        repository = repository_path(target.namespace, target.image_name, target.registry_host)
        try:
            remote = await service.fetch(
                self.client(target.registry_host), repository, known, target.wanted
            )
        except ImageNotFound as exc:
            log.warning("[ImageMonitor] Image %s not found in its registry: %s", name, exc)
            return await self._failed(target, f"not found: {exc}")
        except RegistryError as exc:
            log.error("[ImageMonitor] Error checking %s: %s", name, exc)
            return await self._failed(target, str(exc))

        plan = service.plan_for(target, remote, known)
        if plan.changed:
            # Which re-pushed tags anyone asked about: read only when there are re-pushes.
            async with self.sessionmaker() as session:
                tracked = await service.load_tracked(session, target.id)
            plan = service.plan_for(target, remote, known, tracked)
        log.info("[ImageMonitor] Found %d tags for %s", len(remote), name)
        log.info("[ImageMonitor] Found %d new tags for %s", len(plan.new), name)
        if unchanged is not None and record.nothing_to_record(remote, known, plan):
            unchanged.append((target, self.clock()))
            result = service.CheckResult(target.id, name, tags_seen=len(remote))
            self._report(result)
            return result
        async with self._write_gate, self.sessionmaker() as session, session.begin():
            result = await record.record_outcome(
                session,
                target,
                remote,
                known,
                plan,
                now=self.clock(),
                default_interval_minutes=self.settings.check_interval_minutes,
            )
        self._report(result)
        return result

    async def _failed(self, target: service.Target, error: str) -> service.CheckResult:
        async with self._write_gate, self.sessionmaker() as session, session.begin():
            await record.record_failure(
                session,
                target,
                error,
                now=self.clock(),
                default_interval_minutes=self.settings.check_interval_minutes,
            )
        result = service.CheckResult(target.id, target.display_name, error=error)
        self._report(result)
        return result

    def _report(self, result: service.CheckResult) -> None:
        if self.on_result:
            self.on_result(result)

    # -- a scan -------------------------------------------------------------------------------
    async def claim(
        self, *, force: bool = False, limit: int = 1000
    ) -> tuple[list[service.Target], int]:
        """Claim due images (all monitored ones when ``force``) and schedule their next check.

        Images whose registry has no budget left stay due and are counted as deferred: the
        budget goes to the most overdue images instead of being spent on a 429.
        """
        now = self.clock()
        query = select(Image).where(
            Image.watch_for_updates.is_(True), Image.approval_status == "approved"
        )
        if not force:
            query = query.where((Image.next_check_at.is_(None)) | (Image.next_check_at <= now))
        query = (
            query.order_by(Image.next_check_at.asc().nulls_first(), Image.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        allowance = {h: b for h, b in self.budgets().items() if b is not None}
        claimed: list[service.Target] = []
        deferred = 0
        async with self.sessionmaker() as session, session.begin():
            for image in (await session.scalars(query)).all():
                host = urlsplit(self.api_url(image.registry_host)).netloc.lower()
                if host in allowance:
                    if allowance[host] <= 0:
                        deferred += 1
                        continue
                    allowance[host] -= 1
                image.next_check_at = now + service.interval_of(
                    image, self.settings.check_interval_minutes
                )
                claimed.append(service.Target.of(image))
        return claimed, deferred

    async def run_once(self, *, force: bool = False) -> RunSummary:
        summary = RunSummary(started_at=self.clock())
        log.info("[ImageMonitor] Checking for new image tags...")
        targets, summary.deferred_for_budget = await self.claim(force=force)
        log.info("[ImageMonitor] Monitoring %d images", len(targets))
        results = await self.check_many(targets)
        summary.results = results
        summary.images_checked = len(results)
        summary.requests_created = sum(len(r.requests_created) for r in results)
        summary.errors = sum(r.error is not None for r in results)
        summary.finished_at = self.clock()
        self.last_run = summary
        log.info("[ImageMonitor] Check complete")
        return summary

    async def check_many(self, targets: Sequence[service.Target]) -> list[service.CheckResult]:
        gate = asyncio.Semaphore(self.settings.monitor_concurrency)
        unchanged: list[tuple[service.Target, datetime]] = []

        async def one(target: service.Target) -> service.CheckResult:
            async with gate:
                try:
                    return await self.check(target, unchanged=unchanged)
                except Exception as exc:  # one bad image never stops the scan
                    log.exception(
                        "[ImageMonitor] Unexpected error checking %s", target.display_name
                    )
                    return service.CheckResult(target.id, target.display_name, error=repr(exc))

        try:
            return list(await asyncio.gather(*(one(t) for t in targets)))
        finally:
            async with self._write_gate, self.sessionmaker() as session, session.begin():
                await record.record_unchanged(
                    session,
                    unchanged,
                    default_interval_minutes=self.settings.check_interval_minutes,
                )

    # -- the loop -----------------------------------------------------------------------------
    async def run_forever(self) -> None:
        interval = self.settings.check_interval_minutes
        log.info("[ImageMonitor] Starting monitor (check interval: %d minutes)", interval)
        self.running = True
        try:
            while True:
                try:
                    await self.run_once()
                except Exception:  # the loop outlives a failed scan (database down, say)
                    log.exception("[ImageMonitor] Scan failed; retrying at the next tick")
                wait = await self._until_next_due()
                self.next_run_at = self.clock() + wait
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait.total_seconds())
        finally:
            self.running = False

    def wake(self) -> None:
        self._wake.set()

    async def _until_next_due(self) -> timedelta:
        async with self.sessionmaker() as session:
            next_due = await session.scalar(
                select(func.min(Image.next_check_at)).where(
                    Image.watch_for_updates.is_(True), Image.approval_status == "approved"
                )
            )
        if next_due is None:
            return IDLE_POLL
        return max(timedelta(seconds=1), min(IDLE_POLL, next_due - self.clock()))

    def status(self) -> dict[str, Any]:
        """The seed's shape (running, checkIntervalMinutes, nextCheckIn in ms), and more."""
        next_in = (
            max(0, int((self.next_run_at - self.clock()).total_seconds() * 1000))
            if self.next_run_at
            else 0
        )
        return {
            "running": self.running,
            "checkIntervalMinutes": self.settings.check_interval_minutes,
            "nextCheckIn": next_in,
            "lastRun": self.last_run.as_dict() if self.last_run else None,
            "registryBudget": self.budgets(),
            "timestamp": int(time.time() * 1000),
        }
