"""Every time and age the CLI reads from its options: --now, --at, --since, --older-than.

A moment (--now, campaign start --at, --since) may be written as
  YYYY-MM-DD HH:MM, YYYY-MM-DDTHH:MM or YYYY-MM-DD, or as ISO 8601 with seconds
  and/or an offset (2026-12-01T09:00:00Z, 2026-12-01T10:00+01:00).
Without an offset it is read in the option's own zone: UTC for --now (a test and
demo clock), the practice's zone (delivery.default_timezone) for --at and --since.

`newsletter schedule --at` is a wall-clock time whose zone depends on --timezone,
so it takes no offset and no bare date; the Python API parses it
(nurture.newsletters.parse_local, with the same YYYY-MM-DD HH:MM formats) and the
CLI passes the text through.

An age is a whole number and a unit: 30s, 10m, 2h, 1d.

Every mistake is one line naming the option, what to write and an example:
  --at '9am': use YYYY-MM-DD HH:MM or YYYY-MM-DD (read in America/Chicago), for example 2026-12-08 10:00
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nurture.errors import InputError
from nurture.newsletters import AT_FORMATS
from nurture.sending.planning import at_local, zone

DAY_FORMAT = "%Y-%m-%d"
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _moment(value: str, option: str, tz: ZoneInfo, formats: str, example: str) -> datetime:
    """`value` as a UTC-aware datetime; a time without an offset is wall-clock time in `tz`."""
    text = value.strip()
    for pattern in (*AT_FORMATS, DAY_FORMAT):
        try:
            local = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return at_local(local.date(), local.time(), tz)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {value!r}: use {formats}, for example {example}") from None
    if when.tzinfo is None:
        return at_local(when.date(), when.time(), tz)
    return when


def parse_now(value: str | None, option: str = "--now") -> datetime:
    """--now: the real time when not given; a time without an offset is UTC."""
    if not value:
        return datetime.now(UTC)
    # In UTC, at_local only attaches the zone: the same reading --now has always had.
    return _moment(value, option, zone("UTC"), "YYYY-MM-DD HH:MM (UTC) or ISO 8601", "2026-12-01T09:00:00Z")


def parse_practice_time(value: str, option: str, zone_name: str) -> datetime:
    """--at and --since: a time without an offset is read in the practice's zone `zone_name`."""
    return _moment(
        value,
        option,
        zone(zone_name),
        f"YYYY-MM-DD HH:MM or YYYY-MM-DD (read in {zone_name})",
        "2026-12-08 10:00",
    )


def parse_age(value: str, option: str = "--older-than") -> timedelta:
    """--older-than: a whole number and a unit (s, m, h or d)."""
    text = value.strip().lower()
    count, unit = text[:-1], text[-1:]
    # isascii: str.isdigit also accepts digits such as '²' that int() refuses.
    if not count or unit not in AGE_UNITS or not (count.isascii() and count.isdigit()):
        raise InputError(
            f"{option} {value!r}: use a number and a unit (s, m, h or d), for example 30m, 2h or 1d"
        )
    return timedelta(seconds=int(count) * AGE_UNITS[unit])
