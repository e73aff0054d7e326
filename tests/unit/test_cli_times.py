"""The times and ages the CLI reads: what each accepts, and the one-line error for what it does not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nurture.cli.times import parse_age, parse_now, parse_practice_time
from nurture.errors import InputError
from nurture.newsletters import parse_local

UTC = UTC
PRACTICE = "America/Chicago"  # UTC-6 in December; clocks jump from 02:00 to 03:00 on 2026-03-08


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T09:00:00Z", "2026-12-01 09:00"),
        ("2026-12-01T09:00:00", "2026-12-01 09:00"),  # no offset: UTC
        ("2026-12-01 09:00", "2026-12-01 09:00"),
        ("2026-12-01T09:00", "2026-12-01 09:00"),
        ("2026-12-01", "2026-12-01 00:00"),
        ("2026-12-01T10:00:00+01:00", "2026-12-01 09:00"),
        ("  2026-12-01T09:00Z ", "2026-12-01 09:00"),
        ("2026-12-01T09:00:00.250000Z", "2026-12-01 09:00:00.250000"),
    ],
)
def test_now_accepts(text: str, expected: str) -> None:
    when = parse_now(text)
    assert when == utc(expected)
    assert when.utcoffset() is not None


def test_now_without_a_value_is_the_real_time() -> None:
    for value in (None, ""):
        assert abs(parse_now(value) - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-08 10:00", "2026-12-08 16:00"),
        ("2026-12-08T10:00", "2026-12-08 16:00"),
        ("2026-12-8 9:05", "2026-12-08 15:05"),
        ("2026-12-08", "2026-12-08 06:00"),
        ("2026-12-08T10:00:30", "2026-12-08 16:00:30"),  # ISO without an offset: still practice time
        ("2026-12-08T10:00Z", "2026-12-08 10:00"),
        ("2026-12-08T10:00+01:00", "2026-12-08 09:00"),
        ("2026-03-08 02:30", "2026-03-08 08:30"),  # skipped by the DST jump: moves past the gap (03:30 CDT)
        ("2026-11-01 01:30", "2026-11-01 06:30"),  # happens twice: the first (CDT)
    ],
)
def test_practice_time_accepts(text: str, expected: str) -> None:
    assert parse_practice_time(text, "--at", PRACTICE) == utc(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 2H ", timedelta(hours=2)),
        ("0m", timedelta(0)),
    ],
)
def test_age_accepts(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-08 10:00", datetime(2026, 12, 8, 10, 0)),
        ("2026-12-08T10:00", datetime(2026, 12, 8, 10, 0)),
    ],
)
def test_newsletter_at_is_a_wall_clock_time(text: str, expected: datetime) -> None:
    assert parse_local(text) == expected


NOW_HINT = "use YYYY-MM-DD HH:MM (UTC) or ISO 8601, for example 2026-12-01T09:00:00Z"
PRACTICE_HINT = f"use YYYY-MM-DD HH:MM or YYYY-MM-DD (read in {PRACTICE}), for example 2026-12-08 10:00"
AGE_HINT = "use a number and a unit (s, m, h or d), for example 30m, 2h or 1d"
WALL_CLOCK_HINT = "use YYYY-MM-DD HH:MM, for example 2026-12-08 10:00"


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (lambda text: parse_now(text), "tomorrow", f"--now 'tomorrow': {NOW_HINT}"),
        (lambda text: parse_now(text), "2026-12-01 25:00", f"--now '2026-12-01 25:00': {NOW_HINT}"),
        (lambda text: parse_now(text), "01/12/2026", f"--now '01/12/2026': {NOW_HINT}"),
        (lambda text: parse_practice_time(text, "--at", PRACTICE), "9am", f"--at '9am': {PRACTICE_HINT}"),
        (
            lambda text: parse_practice_time(text, "--at", PRACTICE),
            "2026-12-08 10am",
            f"--at '2026-12-08 10am': {PRACTICE_HINT}",
        ),
        (
            lambda text: parse_practice_time(text, "--since", PRACTICE),
            "08/12/2026",
            f"--since '08/12/2026': {PRACTICE_HINT}",
        ),
        (lambda text: parse_practice_time(text, "--since", PRACTICE), "", f"--since '': {PRACTICE_HINT}"),
        (lambda text: parse_age(text), "soon", f"--older-than 'soon': {AGE_HINT}"),
        (lambda text: parse_age(text), "2", f"--older-than '2': {AGE_HINT}"),
        (lambda text: parse_age(text), "h", f"--older-than 'h': {AGE_HINT}"),
        (lambda text: parse_age(text), "-2h", f"--older-than '-2h': {AGE_HINT}"),
        (lambda text: parse_age(text), "1.5h", f"--older-than '1.5h': {AGE_HINT}"),
        (lambda text: parse_age(text), "2w", f"--older-than '2w': {AGE_HINT}"),
        (lambda text: parse_age(text), "\u00b2m", f"--older-than '\u00b2m': {AGE_HINT}"),
        (lambda text: parse_age(text), "", f"--older-than '': {AGE_HINT}"),
        (lambda text: parse_local(text), "2026-12-08", f"--at '2026-12-08': {WALL_CLOCK_HINT}"),
        (lambda text: parse_local(text), "2026-12-08T10:00Z", f"--at '2026-12-08T10:00Z': {WALL_CLOCK_HINT}"),
    ],
)
def test_a_mistake_is_one_line_naming_the_option(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse(text)
    assert str(caught.value) == message
