"""Internationalized addresses: an IDN domain goes to the provider in ASCII (IDNA) form;
a non-ASCII local part, which SendGrid cannot deliver, is refused at signup and import
with a message that says why and what to do."""

from __future__ import annotations

import pytest

from nurture.addresses import normalize_email
from nurture.errors import InputError
from nurture.providers.base import ascii_address
from tests.support.factories import at

NOW = at("2026-12-01 14:00")


def test_the_domain_becomes_idna_and_the_rest_stays() -> None:
    assert ascii_address("user@bücher.example") == "user@xn--bcher-kva.example"
    assert ascii_address("User.Name+tag@例え.テスト") == "User.Name+tag@xn--r8jz45g.xn--zckzah"
    assert ascii_address("plain@example.com") == "plain@example.com"


def test_an_idn_domain_is_accepted_at_signup() -> None:
    address, key = normalize_email("user@bücher.example")
    assert address == "user@bücher.example" and key == "user@bücher.example"


@pytest.mark.parametrize("address", ["josé@example.com", "müller@bücher.example", "用户@example.com"])
def test_a_non_ascii_local_part_is_refused_with_a_clear_message(address: str) -> None:
    with pytest.raises(InputError) as caught:
        normalize_email(address)
    message = str(caught.value)
    assert address in message and "before the @" in message and "plain letters" in message
