"""Maintenance windows (pure, no I/O): whether a rollout's devices may switch now, since when,
and when they next may.

A window opens at each time its cron expression (five fields, minute to weekday) names, read
in its own timezone, and stays open ``duration_minutes`` of elapsed time. Across a change of
the clocks the opening follows cron's rule (cronsim): a time the clocks skip opens at the
first minute after the change, a time they pass twice opens once, at the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_FIELDS = 5
MAX_DURATION_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Window:
    cron: str
    duration_minutes: int
    timezone: str

    @classmethod
    def of(cls, raw: Window | Mapping[str, Any]) -> Window:
        if isinstance(raw, Window):
            return raw
        return cls(str(raw["cron"]), int(raw["duration_minutes"]), str(raw["timezone"]))

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)


@dataclass(frozen=True)
class Gate:
    """What the windows say at one moment."""

    open: bool
    opened_at: datetime | None  # the opening of the window that is open now (UTC)
    next_opening: datetime | None  # the next opening after now, open or not (UTC)


def cron_error(cron: str) -> str | None:
    """Why ``cron`` is not a window's schedule, or None."""
    fields = cron.split()
    if len(fields) != CRON_FIELDS:
        return (
            f"cron {cron!r} must have {CRON_FIELDS} fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}"
        )
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"cron {cron!r} is not valid: {exc}"
    return None


def timezone_error(name: str) -> str | None:
    """Why ``name`` is not an IANA timezone this server knows, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r} (an IANA name such as 'Europe/Berlin' or 'UTC')"
    return None


def duration_error(minutes: int) -> str | None:
    if minutes <= 0:
        return f"duration_minutes must be greater than 0, not {minutes}"
    if minutes > MAX_DURATION_MINUTES:
        return f"duration_minutes must be at most {MAX_DURATION_MINUTES} (7 days), not {minutes}"
    return None


def problems(window: Window) -> list[str]:
    found = (
        cron_error(window.cron),
        timezone_error(window.timezone),
        duration_error(window.duration_minutes),
    )
    return [p for p in found if p]


def _expression(window: Window) -> str:
    return " ".join(window.cron.split())


# A clock change moves wall time by at most this much (an hour nearly everywhere; two at most).
_SHIFT = timedelta(hours=2)


def _search(window: Window, now: datetime, *, reverse: bool) -> Iterator[tuple[datetime, datetime]]:
    """(wall time, UTC) of openings, from wall-clock ``now`` plus or minus the largest shift.

    cronsim walks wall-clock time: in the hour a clock change repeats, an opening can come
    after ``now`` by the wall clock and before it by elapsed time (or the other way round),
    so the callers look a shift beyond ``now`` and compare in UTC.
    """
    zone = ZoneInfo(window.timezone)
    wall = now.astimezone(zone).replace(microsecond=0)
    start = (wall.replace(tzinfo=None) + (_SHIFT if reverse else -_SHIFT)).replace(tzinfo=zone)
    for found in CronSim(" ".join(window.cron.split()), start, reverse=reverse):
        yield found.replace(tzinfo=None), found.astimezone(UTC)


def last_opening(window: Window, now: datetime) -> datetime:
    """The latest opening at or before ``now`` (UTC)."""
    best: tuple[datetime, datetime] | None = None
    for wall, moment in _search(window, now, reverse=True):
        if best is not None and wall < best[0] - _SHIFT:
            break
        if moment <= now and (best is None or moment > best[1]):
            best = (wall, moment)
    assert best is not None  # a valid cron expression matches again and again
    return best[1]


def following_opening(window: Window, now: datetime) -> datetime:
    """The first opening strictly after ``now`` (UTC)."""
    best: tuple[datetime, datetime] | None = None
    for wall, moment in _search(window, now, reverse=False):
        if best is not None and wall > best[0] + _SHIFT:
            break
        if moment > now and (best is None or moment < best[1]):
            best = (wall, moment)
    assert best is not None
    return best[1]


def opened_at(window: Window, now: datetime) -> datetime | None:
    """The opening of this window when it is open at ``now``; None when it is closed."""
    opening = last_opening(window, now)
    return opening if now < opening + window.duration else None


def gate(windows: Iterable[Window | Mapping[str, Any]], now: datetime) -> Gate:
    """Whether a device may switch at ``now``. No windows at all: always.

    Where windows overlap, the open one that opened last counts: its end is the latest, and a
    health timeout counted from it is the longest.
    """
    parsed: Sequence[Window] = [Window.of(w) for w in windows]
    if not parsed:
        return Gate(open=True, opened_at=None, next_opening=None)
    openings = [o for w in parsed if (o := opened_at(w, now)) is not None]
    upcoming = min(following_opening(w, now) for w in parsed)
    return Gate(
        open=bool(openings), opened_at=max(openings) if openings else None, next_opening=upcoming
    )


def is_open(windows: Iterable[Window | Mapping[str, Any]], now: datetime) -> bool:
    return gate(windows, now).open


def next_opening(windows: Iterable[Window | Mapping[str, Any]], now: datetime) -> datetime | None:
    """The first opening of any of the windows after ``now``; None without windows."""
    return gate(windows, now).next_opening
