"""Maintenance windows, pure: open or closed at a given moment, since when, and the next
opening, with the clock given (midnight in a named timezone, both of Berlin's clock changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tagwarden.rollouts import gates, windows
from tagwarden.rollouts.schemas import RolloutCreate, RolloutOptions
from tagwarden.rollouts.windows import Window

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


def test_no_windows_means_always_open() -> None:
    gate = windows.gate([], datetime(2026, 1, 1, tzinfo=UTC))
    assert gate == windows.Gate(open=True, opened_at=None, next_opening=None)


def test_a_window_crossing_midnight_in_new_york_is_open_on_both_days() -> None:
    nightly = Window("0 23 * * *", 120, "America/New_York")  # 23:00 to 01:00 local
    before = at(NEW_YORK, 2026, 6, 10, 22, 59)
    assert not windows.is_open([nightly], before)
    assert windows.next_opening([nightly], before) == at(NEW_YORK, 2026, 6, 10, 23, 0)
    # Past midnight, on the next local day: the window that opened yesterday is still open.
    after_midnight = at(NEW_YORK, 2026, 6, 11, 0, 30)
    gate = windows.gate([nightly], after_midnight)
    assert gate.open
    assert gate.opened_at == at(NEW_YORK, 2026, 6, 10, 23, 0)
    assert gate.opened_at == datetime(2026, 6, 11, 3, 0, tzinfo=UTC)  # EDT is UTC-4
    assert gate.next_opening == at(NEW_YORK, 2026, 6, 11, 23, 0)
    # It closes after exactly its duration.
    assert windows.is_open([nightly], at(NEW_YORK, 2026, 6, 11, 0, 59, 59))
    assert not windows.is_open([nightly], at(NEW_YORK, 2026, 6, 11, 1, 0))


def test_the_opening_minute_itself_is_inside() -> None:
    window = Window("0 2 * * *", 60, "UTC")
    opening = datetime(2026, 5, 5, 2, 0, tzinfo=UTC)
    assert windows.gate([window], opening).opened_at == opening
    assert not windows.is_open([window], opening - timedelta(microseconds=1))


def test_berlin_spring_forward_skipped_opening_opens_after_the_change() -> None:
    # 29 March 2026, last Sunday of March: 02:00 CET becomes 03:00 CEST; 02:30 never happens.
    window = Window("30 2 * * *", 60, "Europe/Berlin")
    saturday = at(BERLIN, 2026, 3, 28, 12, 0)
    opening = windows.next_opening([window], saturday)
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the first minute after
    assert windows.is_open([window], opening + timedelta(minutes=59))
    assert not windows.is_open([window], opening + timedelta(minutes=60))
    # The day before and the day after, 02:30 local is an hour apart in UTC.
    assert windows.next_opening([window], at(BERLIN, 2026, 3, 27, 12, 0)) == datetime(
        2026, 3, 28, 1, 30, tzinfo=UTC
    )
    assert windows.next_opening([window], at(BERLIN, 2026, 3, 29, 12, 0)) == datetime(
        2026, 3, 30, 0, 30, tzinfo=UTC
    )


def test_berlin_fall_back_repeated_opening_opens_once_and_lasts_elapsed_minutes() -> None:
    # 25 October 2026, last Sunday of October: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    window = Window("30 2 * * *", 60, "Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert windows.next_opening([window], at(BERLIN, 2026, 10, 24, 12, 0)) == first
    # Sixty minutes of elapsed time: open until 01:30 UTC (the second 02:30 local), not longer.
    assert windows.gate([window], first + timedelta(minutes=59)).opened_at == first
    assert not windows.is_open([window], first + timedelta(minutes=60))
    # The second 02:30 (CET) is no opening of its own: the next one is Monday's.
    assert windows.next_opening([window], first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_a_weekly_window_and_a_list_of_windows() -> None:
    saturday_night = Window("0 22 * * 6", 240, "Europe/Berlin")
    tuesday_noon = Window("0 12 * * 2", 30, "UTC")
    both = [saturday_night, tuesday_noon]
    wednesday = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)  # a Wednesday
    gate = windows.gate(both, wednesday)
    assert not gate.open
    assert gate.opened_at is None
    assert gate.next_opening == at(BERLIN, 2026, 7, 4, 22, 0)
    sunday_early = at(BERLIN, 2026, 7, 5, 1, 30)
    assert windows.gate(both, sunday_early).opened_at == at(BERLIN, 2026, 7, 4, 22, 0)
    assert windows.next_opening(both, sunday_early) == datetime(2026, 7, 7, 12, 0, tzinfo=UTC)


def test_overlapping_windows_count_from_the_latest_opening() -> None:
    hourly_long = Window("0 * * * *", 90, "UTC")
    now = datetime(2026, 2, 2, 10, 20, tzinfo=UTC)  # inside 09:00-10:30 and 10:00-11:30
    assert windows.gate([hourly_long], now).opened_at == datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"cron": "0 2 * *", "duration_minutes": 60, "timezone": "UTC"}, "must have 5 fields"),
        ({"cron": "0 2 * * * *", "duration_minutes": 60, "timezone": "UTC"}, "not 6"),
        ({"cron": "61 2 * * *", "duration_minutes": 60, "timezone": "UTC"}, "is not valid"),
        ({"cron": "0 0 30 2 *", "duration_minutes": 60, "timezone": "UTC"}, "is not valid"),
        ({"cron": "0 2 * * *", "duration_minutes": 60, "timezone": "Mars/Olympus"}, "unknown tim"),
        ({"cron": "0 2 * * *", "duration_minutes": 60, "timezone": "../etc/passwd"}, "unknown tim"),
        ({"cron": "0 2 * * *", "duration_minutes": 0, "timezone": "UTC"}, "greater than 0"),
        ({"cron": "0 2 * * *", "duration_minutes": -5, "timezone": "UTC"}, "greater than 0"),
        ({"cron": "0 2 * * *", "duration_minutes": 10081, "timezone": "UTC"}, "at most 10080"),
    ],
)
def test_a_bad_window_is_refused_with_what_is_wrong(
    window: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RolloutOptions.model_validate({"windows": [window]})
    assert message in str(caught.value)


def test_a_good_window_goes_into_the_plan_options() -> None:
    body = RolloutCreate.model_validate(
        {
            "image": "redis",
            "tag": "7",
            "devices": ["dev-1"],
            "options": {
                "windows": [{"cron": "0 2 * * *", "duration_minutes": 60, "timezone": "UTC"}]
            },
        }
    )
    options = body.options.to_plan()
    assert options.windows == (Window("0 2 * * *", 60, "UTC"),)
    stored = body.options.model_dump()
    assert stored["windows"] == [{"cron": "0 2 * * *", "duration_minutes": 60, "timezone": "UTC"}]


def test_the_switch_deadline_counts_from_the_opening_unless_the_release_came_too_late() -> None:
    opening = datetime(2026, 6, 11, 0, 0, tzinfo=UTC)
    released = opening + timedelta(seconds=30)
    assert gates.switch_deadline(
        told_at=released, window_opened_at=opening, health_timeout=600
    ) == opening + timedelta(seconds=600)
    # No window waited for: from when the device was told.
    assert gates.switch_deadline(
        told_at=released, window_opened_at=None, health_timeout=600
    ) == released + timedelta(seconds=600)
    # Released after the whole timeout had passed since the opening: never a deadline in the past.
    late = opening + timedelta(seconds=900)
    assert gates.switch_deadline(
        told_at=late, window_opened_at=opening, health_timeout=600
    ) == late + timedelta(seconds=600)
