"""Checks for single config values: addresses, zones, URLs, durations, clock times, stray characters.

Each raises ValueError with a message the owner can act on; pydantic turns it into a ConfigError
that names the file, line and key.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::00)?")


def check_address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address ({exc})") from None


def check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone (for example Europe/Berlin, America/New_York)"
        ) from None
    return value


def check_url(value: str, *, https_only: bool) -> str:
    allowed = ("https://",) if https_only else ("https://", "http://")
    if not value.startswith(allowed) or len(value) <= len(allowed[0]):
        need = "an https:// URL" if https_only else "an http:// or https:// URL"
        raise ValueError(f"{value!r} must be {need}")
    return value.rstrip("/")


def check_duration(value: Any) -> Any:
    """ "6h", "90m", "1d" (or a number of seconds) as a timedelta."""
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) < 2 or text[-1] not in _DURATION_UNITS or not text[:-1].isdigit():
            raise ValueError(f"{value!r} is not a duration: use a number and a unit, like 90m, 6h or 1d")
        return timedelta(seconds=int(text[:-1]) * _DURATION_UNITS[text[-1]])
    return value


def control_character(value: str, allowed: str) -> str | None:
    """The first control or invisible formatting character in `value` not in `allowed`, if any."""
    if value.isprintable():  # the common case: no Cc/Cf/Zl/Zp character at all
        return None
    return next(
        (ch for ch in value if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")),
        None,
    )


def clock_time(value: object) -> time:
    """'9:00' or '09:00' (optionally ':00' seconds) as a time of day; anything else is refused.

    Numbers are refused rather than read as seconds: YAML 1.1 turned an unquoted 9:00
    into 540, and a window of 00:09 is never what the owner meant."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return time(int(match[1]), int(match[2]))
    raise ValueError(
        f'{value!r} is not a time of day: write it as "HH:MM" (24-hour, in quotes), from "00:00" to "23:59"'
    )
