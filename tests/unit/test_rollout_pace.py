"""A rollout's rate, ramp and failure share as pure functions, and the options' validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tagwarden.rollouts import pace, planner
from tagwarden.rollouts.schemas import RolloutCreate, RolloutOptions

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


def simulate(rate: int, ticks: list[float], waiting: int) -> list[datetime]:
    """The monitor's steps at ``ticks`` (seconds from NOW), each starting what the rate allows
    of ``waiting`` devices; returns the start times."""
    started: list[datetime] = []
    for offset in sorted(ticks):
        now = NOW + timedelta(seconds=offset)
        allowed = pace.allowance(rate, started, now)
        assert allowed is not None
        take = min(allowed, waiting - len(started))
        started += [now] * take
    return started


@given(
    rate=st.integers(min_value=1, max_value=20),
    ticks=st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=60),
    waiting=st.integers(min_value=0, max_value=200),
)
def test_no_minute_window_ever_holds_more_starts_than_the_rate(
    rate: int, ticks: list[float], waiting: int
) -> None:
    started = simulate(rate, ticks, waiting)
    for t in started:  # the densest window of a minute begins at one of the starts
        assert sum(1 for s in started if t <= s < t + pace.WINDOW) <= rate


@given(
    rate=st.integers(min_value=1, max_value=20),
    minutes=st.integers(min_value=1, max_value=30),
)
def test_a_step_every_minute_starts_the_full_rate_until_none_waits(rate: int, minutes: int) -> None:
    waiting = rate * minutes + 1
    started = simulate(rate, [60.0 * m for m in range(minutes)], waiting)
    assert len(started) == rate * minutes


def test_starts_older_than_a_minute_do_not_count_and_no_rate_is_no_limit() -> None:
    old, recent = NOW - timedelta(seconds=60), NOW - timedelta(seconds=59)
    assert pace.allowance(3, [old, old, recent], NOW) == 2
    assert pace.allowance(1, [recent, recent], NOW) == 0
    assert pace.allowance(None, [recent] * 100, NOW) is None


def test_the_ramp_grows_by_its_factor_each_time_enough_devices_have_succeeded() -> None:
    ramp = planner.Ramp(start_per_minute=2, factor=2.0, every_succeeded=5)
    assert [pace.ramp_rate(ramp, n) for n in (0, 4, 5, 9, 10, 15)] == [2, 2, 4, 4, 8, 16]
    assert pace.ramp_rate(planner.Ramp(10, 1.5, 1), 1) == 15
    assert pace.ramp_rate(ramp, 10**9) == pace.RATE_CEILING


@given(
    start=st.integers(min_value=1, max_value=1000),
    factor=st.floats(min_value=1.01, max_value=5),
    every=st.integers(min_value=1, max_value=100),
    a=st.integers(min_value=0, max_value=10**6),
    b=st.integers(min_value=0, max_value=10**6),
)
def test_the_ramp_never_shrinks_and_never_falls_below_its_start(
    start: int, factor: float, every: int, a: int, b: int
) -> None:
    ramp = planner.Ramp(start, factor, every)
    low, high = sorted((a, b))
    assert start <= pace.ramp_rate(ramp, low) <= pace.ramp_rate(ramp, high) <= pace.RATE_CEILING


def test_the_rate_is_max_per_minute_or_the_ramp_or_none() -> None:
    assert pace.rate_per_minute(planner.Options(max_per_minute=7), 100) == 7
    ramped = planner.Options(ramp=planner.Ramp(1, 2.0, 1))
    assert pace.rate_per_minute(ramped, 3) == 8
    assert pace.rate_per_minute(planner.Options(), 3) is None


def test_a_failure_share_counts_only_once_enough_devices_have_finished() -> None:
    abort = planner.Abort(failure_percent=20, min_devices=5)
    assert not pace.failure_share_exceeded(abort, finished=4, failed=4)
    assert pace.failure_share_exceeded(abort, finished=5, failed=2)  # 40% > 20%
    assert not pace.failure_share_exceeded(abort, finished=5, failed=1)  # 20% is not above
    assert not pace.failure_share_exceeded(planner.Abort(100, 1), finished=3, failed=3)
    assert pace.failure_share_exceeded(planner.Abort(0, 1), finished=3, failed=1)


@given(
    percent=st.floats(min_value=0, max_value=100),
    minimum=st.integers(min_value=1, max_value=50),
    finished=st.integers(min_value=0, max_value=200),
    data=st.data(),
)
def test_more_failures_of_the_same_finished_devices_never_lift_a_stop(
    percent: float, minimum: int, finished: int, data: st.DataObject
) -> None:
    abort = planner.Abort(percent, minimum)
    failed = data.draw(st.integers(min_value=0, max_value=finished))
    more = data.draw(st.integers(min_value=failed, max_value=finished))
    if pace.failure_share_exceeded(abort, finished=finished, failed=failed):
        assert pace.failure_share_exceeded(abort, finished=finished, failed=more)
    if finished < minimum:
        assert not pace.failure_share_exceeded(abort, finished=finished, failed=finished)


def request(**body: Any) -> RolloutCreate:
    return RolloutCreate.model_validate(
        {"image": "redis", "tag": "7.2.5-alpine", "selector": {"site": "a"}} | body
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "options": {
                    "max_per_minute": 5,
                    "ramp": {"start_per_minute": 1, "factor": 2, "every_succeeded": 3},
                }
            },
            "give max_per_minute or ramp, not both",
        ),
        ({"options": {"abort": {"failure_percent": 101, "min_devices": 3}}}, "less than or equal"),
        ({"options": {"abort": {"failure_percent": -1, "min_devices": 3}}}, "greater than"),
        ({"options": {"abort": {"failure_percent": 10}}}, "min_devices"),
        (
            {"selector": None, "devices": ["d1"], "options": {"continuous": True}},
            "continuous applies only to a rollout by label selector",
        ),
        ({"options": {"offline": "later"}}, "'skip' or 'wait'"),
        (
            {"options": {"ramp": {"start_per_minute": 1, "factor": 1, "every_succeeded": 1}}},
            "greater than 1",
        ),
        ({"options": {"max_per_minute": 0}}, "greater than or equal to 1"),
    ],
)
def test_bad_combinations_of_rollout_options_are_refused(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        request(**body)


def test_options_round_trip_through_what_a_rollout_stores() -> None:
    options = RolloutOptions.model_validate(
        {
            "ramp": {"start_per_minute": 2, "factor": 1.5, "every_succeeded": 10},
            "abort": {"failure_percent": 12.5, "min_devices": 8},
            "continuous": True,
            "offline": "wait",
        }
    )
    stored = options.model_dump()
    assert planner.Options.of(stored) == options.to_plan()
    assert options.to_plan().ramp == planner.Ramp(2, 1.5, 10)
    assert options.to_plan().abort == planner.Abort(12.5, 8)
    # Options stored before these existed still read.
    assert planner.Options.of({"bake_seconds": 5}) == planner.Options(bake_seconds=5)


def test_an_abort_share_leaves_the_count_allowance_open_unless_it_is_given() -> None:
    abort = {"failure_percent": 10, "min_devices": 5}
    assert RolloutOptions.model_validate({"abort": abort}).max_failures == "100%"
    assert RolloutOptions.model_validate({"abort": abort, "max_failures": 2}).max_failures == 2
    assert RolloutOptions.model_validate({}).max_failures == 0


def test_an_offline_device_is_planned_when_its_rollout_waits_for_it() -> None:
    silent = planner.Candidate(
        uuid="s", architecture="amd64", registered_at=NOW - timedelta(hours=1)
    )
    variants = {"amd64": planner.Variant("amd64", "sha256:index")}

    def plan(offline: str | None) -> planner.Plan:
        options = planner.Options(offline=offline)
        return planner.plan(
            "all-at-once", options, [silent], variants, now=NOW, poll_interval_seconds=60
        )

    assert plan(None).skipped == [planner.Skip("s", "offline")]
    assert plan("skip").skipped == [planner.Skip("s", "offline")]
    assert plan("wait").batches == [["s"]]
