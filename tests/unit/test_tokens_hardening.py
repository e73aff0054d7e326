"""Issue 10, items 10 and 11: only the canonical spelling of a signed link verifies, and
links signed with a previous secret key keep working after the key is rotated."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture import tokens
from nurture.errors import ConfigError, TokenError
from tests.support.factories import memory_config
from tests.support.spellings import spellings

KEY = "current-key-0123456789abcdef"
OLD = "previous-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_the_canonical_spelling_verifies_and_no_other_does():
    token = tokens.make_unsubscribe_token(KEY, 4321, "kap-intro")
    assert tokens.read_unsubscribe_token(KEY, token).subscriber_id == 4321
    variants = spellings(token)
    spare_bit_variants = [v for v in variants if len(v) == len(token) and v[:-1] == token[:-1]]
    assert len(spare_bit_variants) == 15  # 4 spare bits: 16 spellings of the last character, one canonical
    for variant in variants:
        with pytest.raises(TokenError):
            tokens.read_unsubscribe_token(KEY, variant)


@given(
    subscriber_id=st.integers(min_value=1, max_value=2**62), nonce=st.integers(min_value=1, max_value=10**9)
)
def test_confirm_tokens_round_trip_and_every_other_spelling_fails(subscriber_id, nonce):
    token = tokens.make_confirm_token(KEY, subscriber_id, nonce, NOW)
    claim = tokens.read_confirm_token(KEY, token, NOW)
    assert (claim.subscriber_id, claim.nonce) == (subscriber_id, nonce)
    for variant in spellings(token):
        with pytest.raises(TokenError):
            tokens.read_confirm_token(KEY, variant, NOW)


@given(st.text(max_size=200))
def test_any_text_is_a_claim_or_a_token_error(text):
    for read in (
        lambda t: tokens.read_unsubscribe_token(KEY, t),
        lambda t: tokens.read_confirm_token(KEY, t, NOW),
    ):
        with contextlib.suppress(TokenError):
            read(text)


@given(position=st.integers(min_value=0, max_value=200), character=st.characters())
def test_changing_one_character_never_verifies(position, character):
    token = tokens.make_unsubscribe_token(KEY, 77, "newsletter")
    index = position % len(token)
    changed = token[:index] + character + token[index + 1 :]
    if changed == token:
        return
    with pytest.raises(TokenError):
        tokens.read_unsubscribe_token(KEY, changed)


# -- (11) rotation ---------------------------------------------------------------


def test_tokens_signed_with_a_previous_key_verify_and_unknown_keys_do_not():
    old_token = tokens.make_unsubscribe_token(OLD, 5, "kap-intro")
    assert tokens.read_unsubscribe_token((KEY, OLD), old_token).subscriber_id == 5
    with pytest.raises(TokenError):
        tokens.read_unsubscribe_token(KEY, old_token)
    with pytest.raises(TokenError):
        tokens.read_unsubscribe_token((KEY, "another-key-0123456789abc"), old_token)


def test_config_lists_the_current_key_first_then_the_previous_ones():
    config = memory_config(
        environ={
            "NURTURE_SECRET_KEY": KEY,
            "NURTURE_PREVIOUS_SECRET_KEYS": f" {OLD} , older-key-0123456789abc,",
        }
    )
    assert config.secrets.verification_keys() == (KEY, OLD, "older-key-0123456789abc")


def test_a_short_previous_key_is_refused():
    with pytest.raises(ConfigError, match="NURTURE_PREVIOUS_SECRET_KEYS"):
        memory_config(environ={"NURTURE_PREVIOUS_SECRET_KEYS": "short"})
