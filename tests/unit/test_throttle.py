"""The failed-credential throttle's core, on a clock the test moves."""

from __future__ import annotations

import pytest

from tagwarden.auth.throttle import FailureWindow, TooManyFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_the_limit_it_answers_how_long_until_the_oldest_failure_leaves() -> None:
    clock = Clock()
    window = FailureWindow(3, window=60, clock=clock)
    for step in range(3):
        assert window.fail("10.0.0.1") is None
        clock.now += 10 if step < 2 else 5
    # Failures at 1000, 1010, 1020; now 1025: the one at 1000 leaves at 1060.
    assert window.fail("10.0.0.1") == pytest.approx(35.0)
    # A refused attempt is not counted: the window does not move further out.
    clock.now += 34
    assert window.fail("10.0.0.1") == pytest.approx(1.0)
    clock.now += 1
    assert window.fail("10.0.0.1") is None  # 1000 left; this one takes its place
    assert window.fail("10.0.0.1") == pytest.approx(10.0)


def test_addresses_are_counted_apart() -> None:
    clock = Clock()
    window = FailureWindow(2, clock=clock)
    assert window.fail("a") is None
    assert window.fail("a") is None
    assert window.fail("a") is not None
    assert window.fail("b") is None


def test_memory_is_bounded_by_forgetting_the_address_tried_least_recently() -> None:
    clock = Clock()
    window = FailureWindow(1, max_addresses=3, clock=clock)
    for address in ("a", "b", "c"):
        assert window.fail(address) is None
    assert window.fail("a") is not None  # still tracked, still over
    assert window.fail("d") is None
    assert len(window) == 3
    assert window.fail("b") is None  # b was the oldest and was forgotten
    assert window.fail("a") is not None


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert TooManyFailures(34.2).retry_after == 35
    assert TooManyFailures(0.0).retry_after == 1
    assert TooManyFailures(60.0).code == "too_many_failures"
    assert TooManyFailures(60.0).status_code == 429
