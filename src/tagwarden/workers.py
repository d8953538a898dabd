"""Background loops that live as long as the server: started in the lifespan, stopped with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

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
    that reports more work (returns a truthy value) is followed at once when ``eager``.
    """

    def __init__(self, name: str, seconds: float, *, eager: bool = False) -> None:
        self.name = name
        self.seconds = seconds
        self.eager = eager
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, tick: Callable[[], Awaitable[object]]) -> None:
        while True:
            busy: object = None
            try:
                busy = await tick()
            except Exception:  # the loop outlives a failed tick
                log.exception("%s tick failed; retrying", self.name)
            if self.eager and busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.seconds)
