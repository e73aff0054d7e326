"""When may an email go out? Send windows in each subscriber's own time zone.

All arithmetic is done on wall-clock dates and converted to UTC at the end, so
a window of 09:00-17:00 stays 09:00-17:00 local across DST changes, for zones
ahead of and behind UTC and for half-hour zones alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = UTC


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    weekdays_only: bool = False

    def allows_day(self, day: date) -> bool:
        return not self.weekdays_only or day.weekday() < 5


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def at_local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time.

    A time that does not exist (skipped by a DST jump) moves forward past the gap;
    a time that happens twice means the first of the two.
    """
    # PEP 495: with fold=0 a skipped time maps with the offset from before the jump,
    # which lands just after the gap, and a repeated time maps to its first occurrence.
    return datetime.combine(day, clock).replace(tzinfo=tz, fold=0).astimezone(UTC)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def in_window(moment: datetime, tz: ZoneInfo, window: Window) -> bool:
    day = local_date(moment, tz)
    if not window.allows_day(day):
        return False
    return at_local(day, window.start, tz) <= moment < at_local(day, window.end, tz)


def next_window_open(moment: datetime, tz: ZoneInfo, window: Window) -> datetime:
    """The earliest instant at or after `moment` that falls inside the window (UTC)."""
    day = local_date(moment, tz)
    for offset in range(0, 9):
        candidate_day = day + timedelta(days=offset)
        if not window.allows_day(candidate_day):
            continue
        opens = at_local(candidate_day, window.start, tz)
        closes = at_local(candidate_day, window.end, tz)
        if moment < closes:
            return max(opens, moment)
    raise AssertionError("a window opens at least once a week")  # pragma: no cover


def next_day_open(moment: datetime, tz: ZoneInfo, window: Window) -> datetime:
    """The window's opening on a local day after the one `moment` falls on (for the daily cap)."""
    tomorrow = local_date(moment, tz) + timedelta(days=1)
    return next_window_open(at_local(tomorrow, time(0, 0), tz), tz, window)


def local_day_start(moment: datetime, tz: ZoneInfo) -> datetime:
    return at_local(local_date(moment, tz), time(0, 0), tz)
