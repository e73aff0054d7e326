"""Signed tokens for confirmation, unsubscribe and preference-center links.

A token is `base64url(payload) "." base64url(hmac)`, with a key derived per
purpose from NURTURE_SECRET_KEY so a confirmation token can never be used as an
unsubscribe token or the other way round. Tokens carry ids, never addresses.

Only the canonical spelling verifies (unpadded base64url, spare bits zero): each
part is decoded and encoded again, and must come back unchanged. Otherwise one
link would have many spellings that all work, and a link could not be matched
or revoked by its text.

Verifying takes one key or several: new tokens are signed with the current key
(the first), and tokens signed with any of NURTURE_PREVIOUS_SECRET_KEYS still
verify, so a key can be rotated without breaking unsubscribe links in old emails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from nurture.errors import TokenError

CONFIRM_TTL = timedelta(days=7)
_MAC_BYTES = 16


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    # The same text as base64.urlsafe_b64encode(data).rstrip(b"="), with one call fewer per part:
    # a sending pass encodes two parts for every email.
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


_INVALID = "this link is not valid: it may have been cut short or changed"


def _unb64(text: str) -> bytes:
    """The bytes of a canonical unpadded base64url string; ValueError for any other spelling."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # padding, +/ , whitespace, stray characters or non-zero spare bits
        raise ValueError("not canonical base64url")
    return data


@lru_cache(maxsize=64)
def _purpose_key(secret: str, purpose: str) -> bytes:
    # Cached: a sending pass signs one unsubscribe token per email with the same key.
    return hmac.new(secret.encode(), f"nurture/{purpose}".encode(), hashlib.sha256).digest()


class _KeyedMac:
    """HMAC-SHA256 under one key, with the inner and outer pads hashed once.

    The same digest as `hmac.new(key, body, sha256)` (RFC 2104), computed from copies
    of two SHA-256 states that already hold the padded key: four C calls per token,
    where hmac.HMAC's copy-and-update costs several times more in Python. A sending
    pass signs one unsubscribe token per email. The two states are never updated
    themselves, so copies taken from several threads at once all start clean.
    """

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=64)
def _keyed_mac(secret: str, purpose: str) -> _KeyedMac:
    # Keyed once per (secret, purpose): a sending pass signs one token per email with the same key.
    return _KeyedMac(_purpose_key(secret, purpose))


def _mac(secret: str, purpose: str, body: bytes) -> bytes:
    """HMAC-SHA256 of body under the purpose key, cut to _MAC_BYTES (what tokens carry)."""
    return _keyed_mac(secret, purpose).digest(body)[:_MAC_BYTES]


def _sign_keyed(keyed: _KeyedMac, payload: str) -> str:
    body = payload.encode()
    return f"{_b64(body)}.{_b64(keyed.digest(body)[:_MAC_BYTES])}"


def _sign(secret: str, purpose: str, payload: str) -> str:
    return _sign_keyed(_keyed_mac(secret, purpose), payload)


def _verify(secrets: str | Sequence[str], purpose: str, token: str) -> list[str]:
    """Return the payload fields, or raise TokenError without saying what was wrong.

    `secrets`: the current key, or the current key followed by previous ones."""
    keys = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    try:
        body_part, mac_part = token.split(".")
        body = _unb64(body_part)
        mac = _unb64(mac_part)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise TokenError(_INVALID) from None
    # Every key is tried, so the time taken does not tell which one matched.
    matched = False
    for key in keys:
        expected = _mac(key, purpose, body)
        matched = hmac.compare_digest(mac, expected) or matched
    if not matched:
        raise TokenError(_INVALID)
    try:
        return body.decode("utf-8").split("|")
    except UnicodeDecodeError:
        raise TokenError(_INVALID) from None


@dataclass(frozen=True)
class ConfirmClaim:
    subscriber_id: int
    nonce: int
    issued_at: datetime


def make_confirm_token(secret: str, subscriber_id: int, nonce: int, issued_at: datetime) -> str:
    return _sign(secret, "confirm", f"{subscriber_id}|{nonce}|{int(issued_at.timestamp())}")


def read_confirm_token(secrets: str | Sequence[str], token: str, now: datetime) -> ConfirmClaim:
    fields = _verify(secrets, "confirm", token)
    try:
        subscriber_id, nonce, issued = (int(field) for field in fields)
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (ValueError, OverflowError, OSError):
        raise TokenError(_INVALID) from None
    if now - issued_at > CONFIRM_TTL:
        raise TokenError("this confirmation link has expired (links last 7 days): please sign up again")
    return ConfirmClaim(subscriber_id, nonce, issued_at)


@dataclass(frozen=True)
class UnsubscribeClaim:
    subscriber_id: int
    stream: str


def make_unsubscribe_token(secret: str, subscriber_id: int, stream: str) -> str:
    # No expiry: CAN-SPAM wants the opt-out to keep working; old emails stay valid.
    return _sign(secret, "unsubscribe", f"{subscriber_id}|{stream}")


def unsubscribe_token_signer(secret: str) -> Callable[[int, str], str]:
    """`make_unsubscribe_token` with the key looked up once, for a pass that signs one per email."""
    keyed = _keyed_mac(secret, "unsubscribe")

    def sign(subscriber_id: int, stream: str) -> str:
        return _sign_keyed(keyed, f"{subscriber_id}|{stream}")

    return sign


def read_unsubscribe_token(secrets: str | Sequence[str], token: str) -> UnsubscribeClaim:
    fields = _verify(secrets, "unsubscribe", token)
    if len(fields) != 2 or not fields[0].isascii() or not fields[0].isdigit():
        raise TokenError(_INVALID)
    return UnsubscribeClaim(int(fields[0]), fields[1])


def make_preferences_token(secret: str, subscriber_id: int) -> str:
    # No expiry, like an unsubscribe link: the preference link of any old email keeps working.
    return _sign(secret, "preferences", str(subscriber_id))


def preferences_token_signer(secret: str) -> Callable[[int], str]:
    """`make_preferences_token` with the key looked up once, for a pass that signs one per email."""
    keyed = _keyed_mac(secret, "preferences")

    def sign(subscriber_id: int) -> str:
        return _sign_keyed(keyed, str(subscriber_id))

    return sign


def read_preferences_token(secrets: str | Sequence[str], token: str) -> int:
    """The subscriber id a preference-center link was made for; TokenError for anything else."""
    fields = _verify(secrets, "preferences", token)
    if len(fields) != 1 or not fields[0].isascii() or not fields[0].isdigit() or len(fields[0]) > 19:
        raise TokenError(_INVALID)
    return int(fields[0])


PREFERENCES_FORM_TTL = timedelta(hours=12)


def make_preferences_form_token(secret: str, link_token: str, issued_at: datetime) -> str:
    """The hidden field of a preference-center form: bound to its page's link and to the time
    the page was shown, so a form cannot be forged without the page, nor kept for long."""
    return _sign(secret, "preferences-form", f"{int(issued_at.timestamp())}|{_link_digest(link_token)}")


def check_preferences_form_token(
    secrets: str | Sequence[str], form_token: str, link_token: str, now: datetime
) -> None:
    """TokenError unless `form_token` came from the page of `link_token` within PREFERENCES_FORM_TTL."""
    fields = _verify(secrets, "preferences-form", form_token)
    try:
        issued, digest = fields
        issued_at = datetime.fromtimestamp(int(issued), UTC)
    except (ValueError, OverflowError, OSError):
        raise TokenError(_INVALID) from None
    if not hmac.compare_digest(digest, _link_digest(link_token)):
        raise TokenError(_INVALID)
    if not timedelta(minutes=-5) <= now - issued_at <= PREFERENCES_FORM_TTL:
        raise TokenError("this page was open too long: reload it and try again")


def _link_digest(link_token: str) -> str:
    return _b64(hashlib.sha256(link_token.encode("utf-8", "surrogatepass")).digest()[:_MAC_BYTES])


def address_hash(secret: str, email_key: str) -> str:
    """Keyed hash kept for forgotten people so they stay suppressed."""
    return address_hasher(secret)(email_key)


def address_hasher(secret: str) -> Callable[[str], str]:
    """`address_hash` with the key looked up once, for an import that hashes every address it reads."""
    keyed = _keyed_mac(secret, "suppression")

    def digest(email_key: str) -> str:
        return keyed.digest(email_key.encode()).hex()

    return digest


def event_digest(secret: str, canonical: str) -> str:
    """Keyed id for a provider event that came without one: the event names an address,
    and a plain hash of it could be reversed by hashing guessed addresses."""
    return hmac.new(
        _purpose_key(secret, "provider-event"), canonical.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()


def bounce_tag(secret: str, delivery_id: str) -> str:
    """A short keyed tag for a delivery id in a VERP bounce address (bounces+ID-TAG@...):
    a bounce mail that names a delivery without it is not ours and changes nothing."""
    return hmac.new(_purpose_key(secret, "bounce-address"), delivery_id.encode(), hashlib.sha256).hexdigest()[
        :12
    ]
