"""One scan of many images, in three stages joined by queues so that none waits on another:

* one loader reads what was seen of the images and their tracked tags, ``KNOWN_CHUNK`` images
  per query;
* ``monitor_concurrency`` observers ask the registry, with no transaction open;
* one writer writes whatever checks have finished, as a batch in one transaction.

Targets claimed with a lease have it renewed while the scan runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tagwarden.monitor import record, service
from tagwarden.monitor.discovery import KnownTag

if TYPE_CHECKING:
    from tagwarden.monitor.worker import ImageMonitor

log = logging.getLogger("tagwarden.monitor")

KNOWN_CHUNK = 64  # images whose known tags one query reads, ahead of their checks
WRITE_BATCH = 64  # most checks written in one transaction

Loaded = tuple[service.Target, dict[str, KnownTag], set[str]]


class Scan:
    def __init__(
        self,
        monitor: ImageMonitor,
        targets: Sequence[service.Target],
        leased_until: datetime | None,
    ) -> None:
        self.monitor = monitor
        self.targets = list({t.id: t for t in targets}.values())  # each image once
        self.held = {t.id: leased_until for t in self.targets} if leased_until else {}
        self.observers = min(monitor.settings.monitor_concurrency, len(self.targets))
        self.ready: asyncio.Queue[Loaded | None] = asyncio.Queue(maxsize=KNOWN_CHUNK)
        self.finished: asyncio.Queue[record.Outcome | None] = asyncio.Queue()
        self.results: dict[int, service.CheckResult] = {}

    async def run(self) -> list[service.CheckResult]:
        if not self.targets:
            return []
        # No stage raises (each turns a failure into the image's error result); the group still
        # cancels the others if one ever did, rather than leaving them waiting on a queue.
        async with asyncio.TaskGroup() as group:
            renewer = group.create_task(self.renew())
            group.create_task(self.load())
            writer = group.create_task(self.write())
            await asyncio.gather(
                *(group.create_task(self.observe()) for _ in range(self.observers))
            )
            await self.finished.put(None)
            await writer
            renewer.cancel()
        return [self.results[t.id] for t in self.targets]

    async def load(self) -> None:
        for start in range(0, len(self.targets), KNOWN_CHUNK):
            chunk = self.targets[start : start + KNOWN_CHUNK]
            try:
                async with self.monitor.sessionmaker() as session:
                    known = await service.load_known(session, [t.id for t in chunk])
                    tracked = await service.load_tracked(session, [t.id for t in chunk])
            except Exception as exc:  # these images are not checked, the others still are
                log.exception("[ImageMonitor] Reading the known tags of %d images failed",
                              len(chunk))  # fmt: skip
                for target in chunk:
                    # Viewers read last_error: the type only, never a driver's text (which may
                    # quote SQL and its values); the log above has the traceback.
                    error = f"reading the known tags failed ({type(exc).__name__})"
                    await self.finished.put(record.Outcome(target, error=error))
                continue
            for target in chunk:
                await self.ready.put(
                    (target, known.get(target.id, {}), tracked.get(target.id, set()))
                )
        for _ in range(self.observers):
            await self.ready.put(None)

    async def observe(self) -> None:
        while (item := await self.ready.get()) is not None:
            target, known, tracked = item
            try:
                outcome = await self.monitor.observe(target, known, tracked)
            except Exception as exc:  # one bad image never stops the scan
                log.exception("[ImageMonitor] Unexpected error checking %s", target.display_name)
                # The type only: the message may hold what a registry sent (the log has it).
                outcome = record.Outcome(target, error=f"unexpected error: {type(exc).__name__}")
            await self.finished.put(outcome)

    async def write(self) -> None:
        done = False
        while not done:
            batch = [await self.finished.get()]
            while not self.finished.empty() and len(batch) < WRITE_BATCH:
                batch.append(self.finished.get_nowait())
            done = batch[-1] is None
            outcomes = [o for o in batch if o is not None]
            if outcomes:
                self.results.update((r.image_id, r) for r in await self.monitor.write(outcomes))
                for outcome in outcomes:
                    self.held.pop(outcome.target.id, None)

    async def renew(self) -> None:
        while self.held:
            await asyncio.sleep(self.monitor.settings.monitor_lease_seconds / 3)
            try:
                await self.monitor.renew_leases(self.held)
            except Exception:  # the next renewal may succeed; the lease is not gone yet
                log.warning("[ImageMonitor] Renewing the lease of %d images failed",
                            len(self.held), exc_info=True)  # fmt: skip
