"""How fast a rollout starts devices, and when its failure share stops it (pure, no I/O).

The rate is a ceiling on the devices started in any 60-second window: each step of the rollout
monitor starts at most the rate less the devices started in the minute before it, so no window
of a minute ever holds more starts than the rate, however the monitor's ticks fall.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from tagwarden.rollouts.planner import Abort, Options, Ramp

WINDOW = timedelta(minutes=1)
# A ramp that has grown past any fleet stops growing, so that its float power cannot overflow.
RATE_CEILING = 2**31 - 1


def ramp_rate(ramp: Ramp, succeeded: int) -> int:
    """AWS IoT Jobs' exponential rate: ``start_per_minute * factor ** n``, where n is how many
    times ``every_succeeded`` devices have succeeded; never below the start."""
    steps = max(0, succeeded) // ramp.every_succeeded
    log_rate = math.log(ramp.start_per_minute) + steps * math.log(ramp.factor)
    if log_rate >= math.log(RATE_CEILING):
        return RATE_CEILING
    return max(ramp.start_per_minute, math.floor(math.exp(log_rate) + 1e-9))


def rate_per_minute(options: Options, succeeded: int) -> int | None:
    """The devices the rollout may start per minute now; None: no limit."""
    if options.max_per_minute is not None:
        return options.max_per_minute
    if options.ramp is not None:
        return ramp_rate(options.ramp, succeeded)
    return None


def allowance(rate: int | None, started: Iterable[datetime], now: datetime) -> int | None:
    """How many more devices may start at ``now``: the rate less those started in the minute
    up to ``now`` (``started``: the start times, any order; older ones are ignored). None: no
    limit."""
    if rate is None:
        return None
    recent = sum(1 for t in started if now - WINDOW < t <= now)
    return max(0, rate - recent)


def failure_share_exceeded(abort: Abort, *, finished: int, failed: int) -> bool:
    """True once at least ``min_devices`` have finished (succeeded or failed) and the failed
    share of them is above ``failure_percent``."""
    if finished < abort.min_devices or finished <= 0:
        return False
    return failed * 100 > abort.failure_percent * finished
