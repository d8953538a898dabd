"""Last-seen times, kept in memory and written in batches: a poll is never a database write.

A fleet polling every minute would otherwise write its whole devices table every minute. The
planner only needs last-seen to within a few poll intervals, so a few seconds' delay is free.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tagwarden.clock import SYSTEM_CLOCK, Clock, utc
from tagwarden.devices.models import Device
from tagwarden.workers import Ticker

log = logging.getLogger("tagwarden.devices")


class Presence:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        flush_seconds: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._pending: dict[int, datetime] = {}

    def seen(self, device_id: int) -> None:
        self._pending[device_id] = utc(self.clock)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        table = Device.__table__
        assert isinstance(table, Table)
        statement = (
            update(table)
            .where(table.c.id == bindparam("device_id"))
            .values(last_seen_at=bindparam("seen_at"))
        )
        rows = [{"device_id": k, "seen_at": v} for k, v in sorted(batch.items())]
        try:
            async with self.sessionmaker() as session, session.begin():
                await session.execute(statement, rows)
        except Exception:
            # Put them back (newer polls win) so a database hiccup loses nothing.
            for device_id, seen_at in batch.items():
                self._pending.setdefault(device_id, seen_at)
            raise
        return len(rows)

    async def run_forever(self) -> None:
        try:
            await Ticker("device last-seen", self.flush_seconds, wait_first=True).run(self.flush)
        finally:
            # Shutting down: write what is left so a restart does not forget recent polls.
            try:
                await self.flush()
            except Exception:
                log.exception("final flush of device last-seen times failed")
