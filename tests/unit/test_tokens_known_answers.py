"""Tokens already in people's inboxes must keep verifying, byte for byte.

The expected strings were made by the first implementation (hmac.digest and
base64.urlsafe_b64encode per token), before signing was made cheaper per email;
any change to the payload, the key derivation, the MAC length or the base64
spelling breaks these.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture import tokens
from nurture.errors import TokenError

SECRET = "known-answer-secret-key-0123456789abcdef"
ISSUED = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)

UNSUBSCRIBE = [
    (42, "welcome", "NDJ8d2VsY29tZQ.CS7B4b9F2dfbu2gIN_-4_A"),
    (1234567, "newsletter:17", "MTIzNDU2N3xuZXdzbGV0dGVyOjE3.XBDhwW7La_wf-PrcqeTwGA"),
    (7, "séance-prep", "N3xzw6lhbmNlLXByZXA.l5H_OicJTA3wPXTfb44KIA"),
]


@pytest.mark.parametrize(("subscriber_id", "stream", "token"), UNSUBSCRIBE)
def test_unsubscribe_tokens_are_spelled_as_they_always_were(
    subscriber_id: int, stream: str, token: str
) -> None:
    assert tokens.make_unsubscribe_token(SECRET, subscriber_id, stream) == token
    assert tokens.unsubscribe_token_signer(SECRET)(subscriber_id, stream) == token
    assert tokens.read_unsubscribe_token(SECRET, token) == tokens.UnsubscribeClaim(subscriber_id, stream)


def test_a_token_from_one_signer_verifies_under_rotation_and_not_under_another_key() -> None:
    token = UNSUBSCRIBE[0][2]
    assert tokens.read_unsubscribe_token(["a-newer-key-0123456789abcdef", SECRET], token).subscriber_id == 42
    with pytest.raises(TokenError):
        tokens.read_unsubscribe_token("a-newer-key-0123456789abcdef", token)


def test_confirm_tokens_are_spelled_as_they_always_were() -> None:
    token = "NDJ8OXwxNzk1NjY1NjAw.1nSJIuIwO8E5Xv75gpSg0A"
    assert tokens.make_confirm_token(SECRET, 42, 9, ISSUED) == token
    assert tokens.read_confirm_token(SECRET, token, ISSUED) == tokens.ConfirmClaim(42, 9, ISSUED)


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_the_precomputed_pads_give_the_standard_hmac(key: bytes, body: bytes) -> None:
    # Keys longer than a SHA-256 block (64 bytes) are hashed first, as RFC 2104 says.
    assert tokens._KeyedMac(key).digest(body) == hmac.new(key, body, hashlib.sha256).digest()
