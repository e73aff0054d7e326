"""Other spellings of a signed token: what a lenient decoder would accept as the same link."""

from __future__ import annotations

import base64


def spellings(token: str) -> list[str]:
    """Other spellings of `token` that a lenient base64 decoder reads as the same bytes."""
    body, mac = token.split(".")
    padded = mac + "=" * (-len(mac) % 4)
    variants = [
        f"{body}.{padded}" if padded != mac else f"{body}.{mac}=",
        f"{body}.{mac}\t",
        f"{body}.{mac[:3]}*{mac[3:]}",
        f"{body}.{mac[:3]}^{mac[3:]}",
        f"{body}.{mac[:5]} {mac[5:]}",
        f"{body}.{mac}\x0b",
        f"{body}.{mac}\u2003",
        f" {token}",
        f"{token}\n",
    ]
    # The standard alphabet's +/ for the URL-safe -_.
    if "-" in token or "_" in token:
        variants.append(token.replace("-", "+").replace("_", "/"))
    # Changed spare bits: 16 MAC bytes leave 4 unused bits in the last character.
    last = mac[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for other in alphabet:
        if other != last and base64.urlsafe_b64decode(mac[:-1] + other + "==") == base64.urlsafe_b64decode(
            mac + "=="
        ):
            variants.append(f"{body}.{mac[:-1]}{other}")
    return variants
