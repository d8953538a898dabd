"""The small worker that approves held requests once their minimum age has passed."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.approvals.approving import AfterApproval
from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.config import Settings
from tagwarden.rules.service import approve_due
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.rules")


class RulesWorker:
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

    async def run_once(self) -> list[int]:
        async with self.sessionmaker() as session, session.begin():
            approved = await approve_due(
                session, now=utc(self.clock), then=AfterApproval.of(self.settings)
            )
        if approved:
            log.info("approval rules approved %d held requests: %s", len(approved), approved)
        return approved

    async def run_forever(self) -> None:
        await Ticker("approval rules", self.settings.rules_tick_seconds).run(self.run_once)
