"""A clock for tests: sleeping advances time at once, so waits can be asserted, not endured."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

# 2025-10-09: a fixed, plausible "now" keeps generated dates and headers reproducible.
DEFAULT_START = 1_760_000_000.0


class FakeClock:
    """``sleep`` moves time forward by the amount asked and yields once to the event loop.

    Time is sequential: two tasks that each sleep 5 s move it 10 s. That is exact for one
    client retrying, and an upper bound when several wait together.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)

    @classmethod
    def at_wall_time(cls) -> FakeClock:
        """Starting now: rows other code stamps with the real time line up with its moments."""
        return cls(time.time())

    def advance(self, by: float | timedelta) -> None:
        self._now += by.total_seconds() if isinstance(by, timedelta) else by

    def set(self, moment: datetime) -> None:
        self._now = moment.timestamp()

    @property
    def slept(self) -> float:
        return sum(self.sleeps)


class OffsetClock:
    """Real time plus an offset the test moves: time still passes, so rows other code stamps
    with the real time a moment later never lie in this clock's future."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.offset += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.offset += seconds
