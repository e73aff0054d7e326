"""What a person types when signing up, checked: address, first name, time zone, tag.

Each cleaner returns the value to store or raises InputError saying what to fix.
"""

from __future__ import annotations

import unicodedata
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from nurture.errors import InputError

MAX_NAME = 100
MAX_TAG = 64


def normalize_email(raw: str) -> tuple[str, str]:
    """Return (address as it should be written, case-folded key), or raise InputError."""
    candidate = (raw or "").strip()
    if not candidate:
        raise InputError("email address is empty")
    if not candidate.rpartition("@")[0].isascii():
        # Such an address needs SMTPUTF8 all the way, which SendGrid does not offer.
        raise InputError(
            f"{candidate!r} has letters outside A-Z (such as é) before the @, and such an address "
            "cannot be delivered by our mail provider: please use an address whose part before the @ "
            "is plain letters, digits and . _ + -"
        )
    try:
        normalized = validate_email(candidate, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InputError(f"{candidate!r} is not a valid email address: {exc}") from None
    return normalized, normalized.casefold()


def clean_first_name(raw: str | None) -> str | None:
    """A first name safe to show in HTML and never able to break a header."""
    # Refuses what nurture.content.prepared.clean_first_name repairs: here the person
    # typing it can fix it; at send time a stored name must be made safe instead.
    if raw is None:
        return None
    name = raw.strip()
    if not name:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise InputError(
            "first name contains a line break or control character: use letters, spaces and punctuation only"
        )
    if len(name) > MAX_NAME:
        raise InputError(f"first name is longer than {MAX_NAME} characters")
    return name


def clean_timezone(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    zone = raw.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"{zone!r} is not an IANA time zone (for example America/Chicago, Europe/London)"
        ) from None
    return zone


def clean_tag(raw: str) -> str:
    tag = raw.strip().lower()
    if not tag or len(tag) > MAX_TAG or not all(ch.isalnum() or ch in "-_" for ch in tag):
        raise InputError(f"tag {raw!r}: use 1 to {MAX_TAG} letters, digits, '-' or '_'")
    return tag
