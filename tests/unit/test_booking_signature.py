"""The booking signature's clock, with a fixed clock: exactly 5 minutes either way is
accepted, a second more is refused, and a timestamp that is not ASCII digits is a 403."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from nurture.errors import WebhookRejected
from nurture.web.booking import verify_booking

SECRET = "booking-secret-0123456789"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BODY = b'{"email": "sam@example.com", "event": "booked"}'


def headers(stamp: str, header: str = "X-Nurture-Signature") -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    return {header: f"t={stamp},v1={digest}"}


def at(offset: timedelta) -> str:
    return str(int((NOW + offset).timestamp()))


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=5), -timedelta(minutes=5)])
def test_within_five_minutes_is_accepted(offset: timedelta) -> None:
    assert verify_booking(SECRET, BODY, headers(at(offset)), NOW) == "x-nurture-signature"
    assert (
        verify_booking(SECRET, BODY, headers(at(offset), "Calendly-Webhook-Signature"), NOW)
        == "calendly-webhook-signature"
    )


@pytest.mark.parametrize("offset", [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)])
def test_a_second_more_is_refused(offset: timedelta) -> None:
    with pytest.raises(WebhookRejected) as refused:
        verify_booking(SECRET, BODY, headers(at(offset)), NOW)
    assert refused.value.status == 403


@pytest.mark.parametrize("stamp", ["²", "1７00000000", "999999999999999", "-1", " ", "1e9"])
def test_a_timestamp_that_is_not_ascii_digits_is_a_403(stamp: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        verify_booking(SECRET, BODY, headers(stamp), NOW)
    assert refused.value.status == 403
