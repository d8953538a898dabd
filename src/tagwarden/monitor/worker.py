"""The image monitor (seed 001's ImageMonitorService): a scheduler over due images.

Safe on many replicas: due images are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and their
``next_check_at`` is pushed a lease ahead (``monitor_lease_seconds``) in the same short
transaction; writing a check's result sets the real next time, an interval ahead. So N replicas
check each image once per interval, and the images of a replica that dies mid-scan are due again
when its lease runs out, not an interval later. A scan renews the lease of its unwritten images
every third of it, so a slow check is never claimed twice. One bad image never stops a scan: its
error is recorded and the scan goes on. Checks are written in batches (group commit), a failed
batch one check at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.approving import AfterApproval
from tagwarden.catalogue.models import Image
from tagwarden.catalogue.states import ImageStatus
from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.config import Settings
from tagwarden.monitor import gather, record, service
from tagwarden.monitor.discovery import KnownTag
from tagwarden.monitor.scan import Scan
from tagwarden.patterns import PatternError
from tagwarden.registry.base import ImageNotFound, RegistryClient, RegistryError
from tagwarden.registry.factory import base_url, client_for, is_docker_hub, repository_path
from tagwarden.registry.transport import RegistryState, host_of
from tagwarden.vulnerabilities.sbom import SbomCollector
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.monitor")
IDLE_POLL = timedelta(seconds=60)  # how often an idle monitor looks for newly due images


@dataclass
class RunSummary:
    started_at: datetime
    finished_at: datetime | None = None
    deferred_for_budget: int = 0
    results: list[service.CheckResult] = field(default_factory=list)

    @property
    def images_checked(self) -> int:
        return len(self.results)

    @property
    def requests_created(self) -> int:
        return sum(len(r.requests_created) for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

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
        clock: Clock = SYSTEM_CLOCK,
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
        self._ticker = Ticker("image monitor", IDLE_POLL.total_seconds())
        # SQLite has one writer; queueing writers here beats its busy handler's sleeps by far
        # when many checks finish at once. PostgreSQL needs no such queue.
        self._write_gate: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if settings.is_sqlite else contextlib.nullcontext()
        )
        self.sboms = SbomCollector(settings, sessionmaker, self.client)

    # -- registries -------------------------------------------------------------------------
    def client(self, registry_host: str) -> RegistryClient:
        return client_for(registry_host, self.settings, self.http, state=self.state)

    def api_url(self, registry_host: str) -> str:
        return base_url(registry_host, self.settings)

    def listing_url(self, image: Image | service.Target) -> str:
        repo = repository_path(image.namespace, image.image_name, image.registry_host)
        if is_docker_hub(image.registry_host):
            return f"{self.api_url(image.registry_host)}/v2/repositories/{repo}/tags/"
        return f"{self.api_url(image.registry_host)}/v2/{repo}/tags/list"

    def budgets(self) -> dict[str, int | None]:
        """Remaining request budget per registry host, as the hosts last reported it."""
        return {host: limiter.remaining() for host, limiter in self.state.limits.hosts().items()}

    # -- one image ----------------------------------------------------------------------------
    async def check(self, image: Image | service.Target) -> service.CheckResult:
        """Check one image now (a manual check, a webhook), as the caller loaded it."""
        target = image if isinstance(image, service.Target) else service.Target.of(image)
        async with self.sessionmaker() as session:
            known = await service.load_known(session, [target.id])
            tracked = await service.load_tracked(session, [target.id])
        outcome = await self.observe(target, known.get(target.id, {}), tracked.get(target.id, ()))
        (result,) = await self._commit([outcome])  # a failure here is the caller's to see
        return result

    async def observe(
        self,
        target: service.Target,
        known: dict[str, KnownTag],
        tracked: Collection[str] | None = None,
    ) -> record.Outcome:
        """Ask the registry and plan the requests; no transaction is open meanwhile.

        ``tracked``: the image's tracked tags (service.load_tracked), read here if not given."""
        name = target.display_name
        log.info("[ImageMonitor] Checking %s at %s", name, self.listing_url(target))
        repository = repository_path(target.namespace, target.image_name, target.registry_host)
        try:
            wanted = target.wanted
        except PatternError as exc:  # stored before patterns were checked: this image's error
            log.warning("[ImageMonitor] Not checking %s: its tag filter: %s", name, exc)
            return record.Outcome(target, error=f"tag filter: {exc}")
        try:
            client = self.client(target.registry_host)
            if tracked is None:
                async with self.sessionmaker() as session:
                    tracked = (await service.load_tracked(session, [target.id])).get(target.id, ())
            watched = {*tracked, *target.watch_tags}
            remote = await service.fetch(
                client,
                repository,
                known,
                wanted,
                watched,
                self._recall(target.id),
                only_newest=not known or target.tag_policy != "all",
            )
            plan = service.plan_for(target, remote, known, watched)
            # Candidates the Hub API listed without a digest: one registry HEAD each, then plan
            # again (a tag gone meanwhile gives way to the next one).
            while unnamed := [c.tag for c in plan.candidates if c.tag.digest is None]:
                remote = await service.name_digests(client, repository, remote, unnamed)
                plan = service.plan_for(target, remote, known, watched)
        except ImageNotFound as exc:
            log.warning("[ImageMonitor] Image %s not found in its registry: %s", name, exc)
            return record.Outcome(target, error=f"not found: {exc}")
        except RegistryError as exc:
            log.error("[ImageMonitor] Error checking %s: %s", name, exc)
            return record.Outcome(target, error=str(exc))
        log.info("[ImageMonitor] Found %d tags for %s", len(remote), name)
        log.info("[ImageMonitor] Found %d new tags for %s", len(plan.new), name)
        # The evidence of the digests about to become requests, read with no transaction open.
        signatures = await gather.signatures(self.sessionmaker, target, client, repository, plan)
        sized = await gather.sizes(client, repository, plan)
        sboms = await gather.sboms(self.sessionmaker, self.sboms, target, client, repository, plan)
        return record.Outcome(
            target, remote, known, plan, signatures=signatures, sizes=sized, sboms=sboms
        )

    def _recall(self, image_id: int) -> service.Recall:
        async def recall(digests: Collection[str]) -> Mapping[str, KnownTag]:
            async with self.sessionmaker() as session:
                return await service.recorded_in_requests(session, image_id, digests)

        return recall

    async def write(self, outcomes: Sequence[record.Outcome]) -> list[service.CheckResult]:
        """Write checks' outcomes in one transaction (group commit); their results, in order.

        Never raises: if the batch fails, each check is written again on its own, and a check
        that still cannot be written gets an error result, so one image's trouble never loses
        the others' findings (nor stops a scan).
        """
        try:
            return await self._commit(outcomes)
        except Exception:
            log.warning(
                "[ImageMonitor] Writing %d checks failed; writing each alone", len(outcomes)
            )
        results = []
        for outcome in outcomes:
            try:
                results += await self._commit([outcome])
            except Exception as exc:
                name = outcome.target.display_name
                log.exception("[ImageMonitor] Recording the check of %s failed", name)
                failed = service.CheckResult(
                    outcome.target.id,
                    name,
                    error=f"recording the check failed ({type(exc).__name__}; see the server log)",
                )
                self._report(failed)
                results.append(failed)
        return results

    async def _commit(self, outcomes: Sequence[record.Outcome]) -> list[service.CheckResult]:
        async with self._write_gate, self.sessionmaker() as session, session.begin():
            results = await record.record_outcomes(
                session,
                outcomes,
                now=utc(self.clock),
                default_interval_minutes=self.settings.check_interval_minutes,
                then=AfterApproval.of(self.settings),
            )
        record.log_created(outcomes, results)
        for result in results:
            self._report(result)
        return results

    def _report(self, result: service.CheckResult) -> None:
        if self.on_result:
            self.on_result(result)

    # -- a scan -------------------------------------------------------------------------------
    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.monitor_lease_seconds)

    async def claim(
        self, *, force: bool = False, limit: int = 1000
    ) -> tuple[list[service.Target], int]:
        """Claim due images (all monitored ones when ``force``): lease them, so that no other
        replica claims them while they are checked, and nobody's crash costs them an interval.

        Images whose registry has no budget left stay due and are counted as deferred: the
        budget goes to the most overdue images instead of being spent on a 429.
        """
        claimed, deferred, _ = await self._claim(force=force, limit=limit)
        return claimed, deferred

    async def _claim(
        self, *, force: bool, limit: int
    ) -> tuple[list[service.Target], int, datetime]:
        """``claim``, and the lease's end: the value its images' ``next_check_at`` now holds."""
        now = utc(self.clock)
        until = now + self.lease
        query = select(Image).where(
            Image.watch_for_updates.is_(True), Image.approval_status == ImageStatus.APPROVED
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
                host = host_of(self.api_url(image.registry_host))
                if host in allowance:
                    if allowance[host] <= 0:
                        deferred += 1
                        continue
                    allowance[host] -= 1
                # A lease, not the next check: record_outcomes sets that when the check is
                # written, and a check never written leaves the image due when this runs out.
                image.next_check_at = until
                claimed.append(service.Target.of(image))
        return claimed, deferred, until

    async def renew_leases(self, held: dict[int, datetime]) -> None:
        """Extend the lease of the claimed images whose check is not written yet.

        Only where ``next_check_at`` still holds this scan's lease: a written check (its next
        time) or another replica's claim (after an expired lease) is never overwritten. ``held``
        keeps the images still leased, each with its lease's new end.
        """
        until = utc(self.clock) + self.lease
        images = cast(Table, Image.__table__)
        by_lease: dict[datetime, list[int]] = {}
        for image_id, lease_end in held.items():
            by_lease.setdefault(lease_end, []).append(image_id)
        async with self._write_gate, self.sessionmaker() as session, session.begin():
            kept: set[int] = set()
            for lease_end, ids in by_lease.items():
                rows = await session.execute(
                    update(images)
                    .where(images.c.id.in_(ids), images.c.next_check_at == lease_end)
                    .values(next_check_at=until)
                    .returning(images.c.id)
                )
                kept.update(rows.scalars())
        for image_id in [i for i in held if i in kept]:
            held[image_id] = until
        for image_id in [i for i in held if i not in kept]:
            del held[image_id]  # written meanwhile, or no longer ours

    async def run_once(
        self,
        *,
        force: bool = False,
        on_claimed: Callable[[int], None] | None = None,
        publish: bool = True,
    ) -> RunSummary:
        """One scan: claim the due images (all when ``force``), check them, keep the summary
        (unless ``publish`` is off: the loop keeps it once it knows the next run's time).
        ``on_claimed`` hears how many were claimed (the CLI's progress bar)."""
        summary = RunSummary(started_at=utc(self.clock))
        log.info("[ImageMonitor] Checking for new image tags...")
        targets, summary.deferred_for_budget, until = await self._claim(force=force, limit=1000)
        log.info("[ImageMonitor] Monitoring %d images", len(targets))
        if on_claimed:
            on_claimed(len(targets))
        summary.results = await self.check_many(targets, leased_until=until)
        summary.finished_at = utc(self.clock)
        if publish:
            self.last_run = summary
        log.info("[ImageMonitor] Check complete")
        return summary

    async def check_many(
        self, targets: Sequence[service.Target], *, leased_until: datetime | None = None
    ) -> list[service.CheckResult]:
        """Check the targets in one pipelined scan (see :class:`monitor.scan.Scan`); targets
        claimed with a lease ending ``leased_until`` have it renewed meanwhile."""
        return await Scan(self, targets, leased_until).run()

    # -- the loop -----------------------------------------------------------------------------
    async def run_forever(self) -> None:
        interval = self.settings.check_interval_minutes
        log.info("[ImageMonitor] Starting monitor (check interval: %d minutes)", interval)
        self.running = True
        try:
            await self._ticker.run(self._tick)
        finally:
            self.running = False

    async def _tick(self) -> timedelta:
        """One scan of what is due; the wait until the next image is due."""
        summary = None
        try:
            summary = await self.run_once(publish=False)
        except Exception:  # the loop outlives a failed scan (database down, say)
            log.exception("[ImageMonitor] Scan failed; retrying at the next tick")
        wait = await self._until_next_due()
        self.next_run_at = utc(self.clock) + wait
        # Published together, so status() never shows a finished run with no next one.
        if summary is not None:
            self.last_run = summary
        return wait

    def wake(self) -> None:
        self._ticker.wake()

    async def _until_next_due(self) -> timedelta:
        async with self.sessionmaker() as session:
            next_due = await session.scalar(
                select(func.min(Image.next_check_at)).where(
                    Image.watch_for_updates.is_(True), Image.approval_status == ImageStatus.APPROVED
                )
            )
        if next_due is None:
            return IDLE_POLL
        return max(timedelta(seconds=1), min(IDLE_POLL, next_due - utc(self.clock)))

    def status(self) -> dict[str, Any]:
        """The seed's shape (running, checkIntervalMinutes, nextCheckIn in ms), and more."""
        next_in = (
            max(0, int((self.next_run_at - utc(self.clock)).total_seconds() * 1000))
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
