"""A clock for tests: sleeping advances time at once, so waits can be asserted, not endured."""

from __future__ import annotations

import asyncio

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

    def advance(self, seconds: float) -> None:
        self._now += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)
