"""Background loops that live as long as the server: started in the lifespan, stopped with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

log = logging.getLogger(__name__)


class BackgroundWorkers:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        if name in self._tasks:
            raise RuntimeError(f"worker {name} is already running")

        async def guarded() -> None:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # a dead worker must be loud, not silent
                log.exception("background worker %s stopped with an error", name)

        self._tasks[name] = asyncio.create_task(guarded(), name=f"tagwarden:{name}")

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


class Ticker:
    """The loop every worker runs: a tick, then a wait of ``seconds`` (or until woken).

    A failed tick is logged and the loop goes on (the database may be back next time); a tick
    that reports more work (returns a truthy value) is followed at once when ``eager``. With
    ``fixed_rate`` the wait is what is left of ``seconds`` after the tick, so ticks start every
    ``seconds`` (a cache that promises an age bound needs that); ``wait_first`` waits before
    the first tick (nothing to do at start). A tick that returns a ``timedelta`` says how long
    to wait before the next one (the monitor sleeps until its next image is due).
    """

    def __init__(
        self,
        name: str,
        seconds: float,
        *,
        eager: bool = False,
        fixed_rate: bool = False,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self.seconds = seconds
        self.eager = eager
        self.fixed_rate = fixed_rate
        self.wait_first = wait_first
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, tick: Callable[[], Awaitable[object]]) -> None:
        if self.wait_first:
            await self._wait(self.seconds)
        while True:
            began = time.monotonic()
            busy: object = None
            try:
                busy = await tick()
            except Exception:  # the loop outlives a failed tick
                log.exception("%s tick failed; retrying", self.name)
            if self.eager and busy:
                continue
            if isinstance(busy, timedelta):
                await self._wait(max(0.0, busy.total_seconds()))
                continue
            spent = time.monotonic() - began if self.fixed_rate else 0.0
            await self._wait(max(0.0, self.seconds - spent))

    async def _wait(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
