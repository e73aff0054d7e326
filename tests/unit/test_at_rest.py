"""Secrets kept in the store, sealed under NURTURE_SECRET_KEY (nurture.at_rest): they open
with the key they were sealed with, or a previous one (rotation), and nothing else opens
them, not even the same value sealed for another row."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture.at_rest import SealError, is_sealed, open_sealed, seal

KEY = "the-current-secret-key-0123456789"
OLD = "the-previous-secret-key-987654321"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_sealed_value_opens_with_its_key_and_holds_no_clear_text() -> None:
    sealed = seal(KEY, "totp", SECRET, bound_to="owner 1")
    assert is_sealed(sealed) and SECRET not in sealed
    assert SECRET.encode() not in base64.urlsafe_b64decode(sealed[3:] + "==")
    opened = open_sealed([KEY], "totp", sealed, bound_to="owner 1")
    assert opened.value == SECRET and not opened.stale


def test_the_same_value_seals_differently_each_time() -> None:
    assert seal(KEY, "totp", SECRET, bound_to="owner 1") != seal(KEY, "totp", SECRET, bound_to="owner 1")


def test_after_a_rotation_the_previous_key_still_opens_and_says_to_seal_again() -> None:
    sealed = seal(OLD, "totp", SECRET, bound_to="owner 1")
    opened = open_sealed([KEY, OLD], "totp", sealed, bound_to="owner 1")
    assert opened.value == SECRET and opened.stale
    with pytest.raises(SealError):
        open_sealed([KEY], "totp", sealed, bound_to="owner 1")  # the old key dropped too early


@pytest.mark.parametrize(
    ("keys", "purpose", "bound_to"),
    [
        (["another-secret-key-00000000000"], "totp", "owner 1"),  # another key
        ([KEY], "totp", "owner 2"),  # copied into another owner's row
        ([KEY], "something-else", "owner 1"),  # another purpose
    ],
)
def test_nothing_else_opens_it(keys: list[str], purpose: str, bound_to: str) -> None:
    sealed = seal(KEY, "totp", SECRET, bound_to="owner 1")
    with pytest.raises(SealError):
        open_sealed(keys, purpose, sealed, bound_to=bound_to)


@given(position=st.integers(min_value=3, max_value=80), flip=st.integers(min_value=1, max_value=255))
def test_an_altered_value_does_not_open(position: int, flip: int) -> None:
    sealed = seal(KEY, "totp", SECRET, bound_to="owner 1")
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:] + "=" * (-len(sealed[3:]) % 4)))
    raw[position % len(raw)] ^= flip
    altered = "v1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(SealError):
        open_sealed([KEY], "totp", altered, bound_to="owner 1")


@pytest.mark.parametrize("text", ["", SECRET, "v1.", "v1.!!!", "v2.abc"])
def test_what_is_not_a_sealed_value_is_refused(text: str) -> None:
    with pytest.raises(SealError):
        open_sealed([KEY], "totp", text, bound_to="owner 1")
