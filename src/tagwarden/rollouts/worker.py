"""The rollout monitor: a background loop that advances every running rollout.

Safe on many replicas: each rollout is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and
advanced in its own transaction, so two workers never judge or target the same batch at once,
and whoever comes second sees the first one's committed result. One failing rollout is logged
and never stops the others.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.config import Settings
from tagwarden.rollouts import batches, engine
from tagwarden.rollouts.models import Rollout
from tagwarden.rollouts.states import ADVANCING
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.rollouts")


class RolloutMonitor:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self._ticker = Ticker("rollout monitor", settings.rollout_tick_seconds)

    async def _advance_next(self, done: set[int]) -> int | None:
        """Claim a rollout not yet advanced in this tick and advance it; None if none is left."""
        async with self.sessionmaker() as session, session.begin():
            query = select(Rollout).where(Rollout.status.in_(ADVANCING))
            if done:
                query = query.where(Rollout.id.not_in(done))
            rollout = await session.scalar(
                query.order_by(Rollout.id).limit(1).with_for_update(skip_locked=True)
            )
            if rollout is None:
                return None
            done.add(rollout.id)
            # Re-read under the write lock (see engine.lock): an operator may have paused or
            # aborted it since the SELECT, which SQLite does not lock.
            await engine.lock(session, rollout.id)
            await session.refresh(rollout)
            if rollout.status not in ADVANCING:
                return rollout.id
            started = time.perf_counter()
            await batches.advance(
                session,
                rollout,
                utc(self.clock),
                poll_interval=self.settings.device_poll_interval_seconds,
            )
            log.debug(
                "advanced rollout %d (%s, batch %s) in %.1f ms",
                rollout.id,
                rollout.status,
                rollout.current_batch,
                (time.perf_counter() - started) * 1000,
            )
            return rollout.id

    async def tick(self) -> int:
        """Advance every due rollout once; returns how many were advanced."""
        done: set[int] = set()
        advanced = 0
        while True:
            before = len(done)
            try:
                rollout_id = await self._advance_next(done)
            except Exception:
                if len(done) == before:  # the claim itself failed (database down): stop here
                    raise
                failed = sorted(done)[-1] if done else None
                log.exception("advancing rollout %s failed; it is retried next tick", failed)
                continue
            if rollout_id is None:
                return advanced
            advanced += 1

    async def run_forever(self) -> None:
        log.info("rollout monitor started (tick every %.1f s)", self.settings.rollout_tick_seconds)
        await self._ticker.run(self.tick)

    def wake(self) -> None:
        self._ticker.wake()
