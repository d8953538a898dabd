"""The one clock every part reads: wall-clock time and sleeping, behind an object so tests move
time by hand (rate limits, leases, bake times, retries) instead of waiting for it.

Registries state waits as unix times and HTTP dates, so ``now`` is unix seconds; a use case
that stamps rows reads :func:`utc` of the same clock, so both agree in a test that moves it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Final, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Final = SystemClock()


def utc(clock: Clock) -> datetime:
    """The clock's moment as an aware UTC datetime: what a use case writes and compares."""
    return datetime.fromtimestamp(clock.now(), UTC)
