"""Secrets kept in the database, encrypted with a key derived from NURTURE_SECRET_KEY.

A copy of the database (a backup, a stolen disk) then holds no usable second factor:
the key lives in the environment only. What the store holds is

    "v1." base64url(nonce || AES-256-GCM ciphertext and tag)

with a key derived per purpose (HKDF-SHA256, like the per-purpose keys of signed
links in nurture.tokens), and the row it belongs to as associated data, so a sealed
value copied into another row or column does not open.

Rotation works as for links: values are sealed with the current key, and those sealed
with any of NURTURE_PREVIOUS_SECRET_KEYS still open; `Opened.stale` says the value
should be sealed again with the current key (done at the next sign-in, or at once for
every row by `nurture owner reseal`).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1."
NONCE_BYTES = 12
TAG_BYTES = 16


class SealError(Exception):
    """A sealed value that no key opens: the keys changed without the old one kept as a
    previous key, or the value was altered. Not a NurtureError: callers say what it means."""


@dataclass(frozen=True)
class Opened:
    value: str
    stale: bool  # sealed with a previous key: seal it again with the current one


@lru_cache(maxsize=32)
def _cipher(secret: str, purpose: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"nurture/at-rest/{purpose}".encode()
    ).derive(secret.encode("utf-8"))
    return AESGCM(key)


def _associated(purpose: str, bound_to: str) -> bytes:
    return f"{purpose}|{bound_to}".encode()


def seal(secret: str, purpose: str, value: str, *, bound_to: str) -> str:
    """`value` encrypted under the current key, for the row named by `bound_to` ("owner 3")."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(secret, purpose).encrypt(nonce, value.encode("utf-8"), _associated(purpose, bound_to))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")


def is_sealed(text: str) -> bool:
    return text.startswith(PREFIX)


def open_sealed(keys: Sequence[str], purpose: str, text: str, *, bound_to: str) -> Opened:
    """The value sealed in `text`, trying the current key (first) and then the previous ones."""
    if not is_sealed(text):
        raise SealError("not a sealed value")
    body = text[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise SealError("not a sealed value") from None
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if len(nonce) < NONCE_BYTES or len(sealed) < TAG_BYTES:
        raise SealError("not a sealed value")
    for position, key in enumerate(keys):
        try:
            plain = _cipher(key, purpose).decrypt(nonce, sealed, _associated(purpose, bound_to))
        except InvalidTag:
            continue
        return Opened(plain.decode("utf-8"), stale=position > 0)
    raise SealError("no key opens this value")
