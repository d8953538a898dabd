"""The one loop every background worker runs: what it waits, when it ticks, what it survives."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import timedelta

import pytest

from tagwarden import workers
from tagwarden.workers import Ticker


class Recording(Ticker):
    """A ticker whose waits are recorded, and which stops after ``ticks`` ticks."""

    def __init__(self, ticks: int, **kwargs: object) -> None:
        super().__init__("test", 1.0, **kwargs)  # type: ignore[arg-type]
        self.waits: list[float] = []
        self.left = ticks

    async def _wait(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        if self.left <= 0:
            raise asyncio.CancelledError


def run(ticker: Recording, tick: object) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(ticker.run(tick))  # type: ignore[arg-type]


def counting(ticker: Recording, result: object = None, fail: bool = False):  # type: ignore[no-untyped-def]
    async def tick() -> object:
        ticker.left -= 1
        if fail:
            raise RuntimeError("database down")
        return result

    return tick


def test_a_tick_then_the_whole_interval() -> None:
    ticker = Recording(2)
    run(ticker, counting(ticker))
    assert ticker.waits == [1.0, 1.0]


def test_wait_first_waits_before_the_first_tick() -> None:
    ticker = Recording(1, wait_first=True)
    run(ticker, counting(ticker))
    assert ticker.waits == [1.0, 1.0]
    assert ticker.left == 0  # one tick, between the two waits


def test_fixed_rate_waits_what_is_left_of_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(0.0, 0.25)  # each tick seems to take 0.25 s
    monkeypatch.setattr(workers.time, "monotonic", lambda: next(clock))
    ticker = Recording(2, fixed_rate=True)
    run(ticker, counting(ticker))
    assert ticker.waits == [0.75, 0.75]


def test_an_eager_ticker_goes_on_at_once_while_there_is_more_work() -> None:
    ticker = Recording(0, eager=True)
    results = iter([1, 1, None, None])  # more work twice, then none

    async def tick() -> object:
        ticker.left -= 1
        return next(results)

    run(ticker, tick)
    assert ticker.left == -3  # three ticks before the first wait
    assert ticker.waits == [1.0]


def test_a_failed_tick_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ticker = Recording(2)
    run(ticker, counting(ticker, fail=True))
    assert ticker.waits == [1.0, 1.0]
    assert caplog.text.count("test tick failed; retrying") == 2


def test_wake_cuts_the_wait_short() -> None:
    async def scenario() -> int:
        ticker = Ticker("woken", 3600.0)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            ticks += 1

        task = asyncio.create_task(ticker.run(tick))
        for _ in range(3):
            await asyncio.sleep(0)
        ticker.wake()
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ticks

    assert asyncio.run(scenario()) == 2


def test_a_tick_that_names_its_wait_gets_that_wait() -> None:
    # The monitor's tick returns the time until its next image is due.
    ticker = Recording(2)
    run(ticker, counting(ticker, result=timedelta(seconds=7.5)))
    assert ticker.waits == [7.5, 7.5]


def test_a_failed_tick_waits_the_interval_even_when_ticks_name_their_wait() -> None:
    ticker = Recording(1)
    run(ticker, counting(ticker, result=timedelta(seconds=7.5), fail=True))
    assert ticker.waits == [1.0]
