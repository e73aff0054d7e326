"""Send windows in the subscriber's own zone, across DST, ahead of and behind UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from nurture.sending.planning import (
    Window,
    at_local,
    in_window,
    local_date,
    next_day_open,
    next_window_open,
    zone,
)

UTC = UTC
NINE_TO_FIVE = Window(time(9), time(17))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone_name", "moment", "expected_open"),
    [
        # Auckland is UTC+13 in December (daylight time): 09:00 local is 20:00 UTC the day before.
        ("Pacific/Auckland", "2026-12-01 21:00", "2026-12-01 21:00"),  # 10:00 local on Dec 2: inside
        ("Pacific/Auckland", "2026-12-01 05:00", "2026-12-01 20:00"),  # 18:00 local Dec 1: next morning
        # Los Angeles is UTC-8 in December.
        ("America/Los_Angeles", "2026-12-01 16:00", "2026-12-01 17:00"),  # 08:00 local: opens at 09:00
        ("America/Los_Angeles", "2026-12-02 01:30", "2026-12-02 17:00"),  # 17:30 local Dec 1: closed
        # Kolkata is UTC+5:30, no DST.
        ("Asia/Kolkata", "2026-12-01 03:00", "2026-12-01 03:30"),  # 08:30 local: opens 09:00 = 03:30Z
        ("Asia/Kolkata", "2026-12-01 05:00", "2026-12-01 05:00"),  # 10:30 local: inside
    ],
)
def test_next_window_open_in_zones_ahead_and_behind_utc(
    zone_name: str, moment: str, expected_open: str
) -> None:
    tz = zone(zone_name)
    opens = next_window_open(utc(moment), tz, NINE_TO_FIVE)
    assert opens == utc(expected_open)
    local = opens.astimezone(tz)
    assert time(9) <= local.time() < time(17)


def test_window_stays_local_across_us_spring_forward() -> None:
    tz = zone("America/Los_Angeles")
    # 2027-03-14 is the US spring-forward day: PST (UTC-8) before, PDT (UTC-7) after.
    before = next_window_open(utc("2027-03-13 12:00"), tz, NINE_TO_FIVE)
    on_the_day = next_window_open(utc("2027-03-14 12:00"), tz, NINE_TO_FIVE)
    assert before == utc("2027-03-13 17:00")  # 09:00 PST
    assert on_the_day == utc("2027-03-14 16:00")  # 09:00 PDT
    assert on_the_day.astimezone(tz).hour == 9


def test_window_across_auckland_fall_back_day() -> None:
    tz = zone("Pacific/Auckland")
    # NZ daylight time ends 2027-04-04 03:00 local (UTC+13 -> UTC+12).
    opens = next_window_open(utc("2027-04-03 12:00"), tz, NINE_TO_FIVE)
    assert opens == utc("2027-04-03 21:00")  # 09:00 NZST (UTC+12) on April 4
    assert opens.astimezone(tz).strftime("%Y-%m-%d %H:%M") == "2027-04-04 09:00"


def test_window_start_inside_a_dst_gap_moves_past_the_gap() -> None:
    tz = zone("America/New_York")
    # 02:30 does not exist on 2027-03-14 in New York.
    instant = at_local(datetime(2027, 3, 14).date(), time(2, 30), tz)
    assert instant.astimezone(tz).hour == 3
    early = Window(time(2, 30), time(4, 0))
    assert in_window(instant, tz, early)


def test_in_window_edges() -> None:
    tz = zone("Asia/Kolkata")
    assert in_window(utc("2026-12-01 03:30"), tz, NINE_TO_FIVE)  # 09:00 local: open
    assert not in_window(utc("2026-12-01 11:30"), tz, NINE_TO_FIVE)  # 17:00 local: closed
    assert not in_window(utc("2026-12-01 03:29"), tz, NINE_TO_FIVE)


def test_weekdays_only_skips_to_monday() -> None:
    tz = zone("America/Los_Angeles")
    weekdays = Window(time(9), time(17), weekdays_only=True)
    saturday_noon = utc("2026-12-05 20:00")  # Sat 12:00 PST
    opens = next_window_open(saturday_noon, tz, weekdays)
    assert opens.astimezone(tz).strftime("%a %H:%M") == "Mon 09:00"
    assert not in_window(saturday_noon, tz, weekdays)


def test_next_day_open_is_tomorrows_window_in_local_terms() -> None:
    tz = zone("Pacific/Auckland")
    moment = utc("2026-12-01 21:00")  # Dec 2 10:00 NZDT
    assert local_date(moment, tz).isoformat() == "2026-12-02"
    assert (
        next_day_open(moment, tz, NINE_TO_FIVE).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        == "2026-12-03 09:00"
    )
