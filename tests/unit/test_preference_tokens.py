"""Preference-center links are as strict as unsubscribe links: signed for their purpose only,
one spelling, old keys still verify after a rotation; and the form token binds a form
to its page's link and to the time the page was shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture import tokens
from nurture.errors import TokenError
from tests.support.spellings import spellings

KEY = "current-key-0123456789abcdef"
OLD = "previous-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


@given(subscriber_id=st.integers(min_value=0, max_value=2**62))
def test_round_trip_and_every_other_spelling_fails(subscriber_id: int) -> None:
    token = tokens.make_preferences_token(KEY, subscriber_id)
    assert tokens.read_preferences_token(KEY, token) == subscriber_id
    assert tokens.preferences_token_signer(KEY)(subscriber_id) == token
    for variant in spellings(token):
        with pytest.raises(TokenError):
            tokens.read_preferences_token(KEY, variant)


def test_a_token_of_another_purpose_or_a_changed_one_is_refused() -> None:
    unsubscribe = tokens.make_unsubscribe_token(KEY, 7, "kap-intro")
    confirm = tokens.make_confirm_token(KEY, 7, 1, NOW)
    for other in (unsubscribe, confirm):
        with pytest.raises(TokenError):
            tokens.read_preferences_token(KEY, other)
    token = tokens.make_preferences_token(KEY, 7)
    body, mac = token.split(".")
    someone_else = tokens.make_preferences_token(KEY, 8).split(".")[0]
    for changed in (f"{someone_else}.{mac}", f"{body}.{mac[::-1]}", body, f"{body}.{mac}.{mac}"):
        with pytest.raises(TokenError):
            tokens.read_preferences_token(KEY, changed)


def test_a_link_signed_with_a_previous_key_still_works_after_rotation() -> None:
    old = tokens.make_preferences_token(OLD, 42)
    assert tokens.read_preferences_token([KEY, OLD], old) == 42
    with pytest.raises(TokenError):
        tokens.read_preferences_token([KEY], old)


def test_the_form_token_belongs_to_one_page_and_lasts_twelve_hours() -> None:
    link = tokens.make_preferences_token(KEY, 42)
    other = tokens.make_preferences_token(KEY, 43)
    form = tokens.make_preferences_form_token(KEY, link, NOW)
    tokens.check_preferences_form_token([KEY], form, link, NOW + timedelta(hours=11))
    tokens.check_preferences_form_token(
        [KEY, OLD], tokens.make_preferences_form_token(OLD, link, NOW), link, NOW
    )
    for form_token, page, when in (
        (form, other, NOW),  # another reader's page
        (form, link, NOW + timedelta(hours=12, seconds=1)),  # kept too long
        (form, link, NOW - timedelta(minutes=6)),  # from the future
        ("", link, NOW),
        (link, link, NOW),  # the link itself is not a form token
        (tokens.make_preferences_form_token("another-key-0123456789", link, NOW), link, NOW),
    ):
        with pytest.raises(TokenError):
            tokens.check_preferences_form_token([KEY], form_token, page, when)
