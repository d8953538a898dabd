"""When to poll next: the server's interval with jitter, longer after each error."""

from __future__ import annotations

import random

JITTER = 0.1  # ±10 %: a fleet restarted together does not poll in lockstep
MAX_BACKOFF_SECONDS = 300.0


def next_delay(
    interval: float, failures: int, rng: random.Random, *, max_backoff: float = MAX_BACKOFF_SECONDS
) -> float:
    """``interval`` ± jitter when the last poll worked; after ``failures`` errors in a row,
    exponential backoff (1, 2, 4 … seconds, capped at ``max_backoff``) with full jitter, so a
    fleet does not come back all at once after an outage."""
    if failures <= 0:
        return max(0.1, interval * rng.uniform(1 - JITTER, 1 + JITTER))
    ceiling = min(max_backoff, 2.0 ** min(failures - 1, 30))
    return max(0.1, rng.uniform(ceiling / 2, ceiling))
