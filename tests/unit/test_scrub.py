"""`scrub` blanks addresses and link tokens however they are spelled (issue 10, item 13).

Property-based: addresses with quoted local parts and address literals, tokens after
/confirm/ or /unsubscribe/ in any case and separator, each piece possibly
percent-encoded (once or twice, either hex case), written as an HTML entity or in
fullwidth forms, inside arbitrary text. Nothing identifying may survive.
"""

from __future__ import annotations

import string
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nurture.redaction import scrub
from nurture.tokens import make_confirm_token, make_unsubscribe_token

SECRET = "scrub-test-secret-0123456789abcdef"
LOCAL_MARK = "QZL"
DOMAIN_MARK = "QZD"

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
QTEXT = "".join(ch for ch in string.printable if ch not in '"\\\r\n\t\x0b\x0c') + " "
# Surrounding text never holds the marks' first letter, so a surviving mark can only be a leak.
AROUND = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(
        lambda ch: "q" not in unicodedata.normalize("NFKC", ch).casefold()
    ),
    max_size=30,
)
SEPARATORS = st.sampled_from([" ", "\n", "<", ">", "(", ")", ",", ";", ": ", "\t", " to "])


def _encoded(ch: str, how: str) -> str:
    code = f"{ord(ch):02X}" if ord(ch) < 128 else None
    if code is None or how == "plain":
        return ch
    if how == "pct":
        return "%" + code
    if how == "pct-lower":
        return "%" + code.lower()
    if how == "pct-twice":
        return "%25" + code
    if how == "entity":
        return f"&#{ord(ch)};"
    if how == "fullwidth" and "!" <= ch <= "~":
        return chr(ord(ch) - 0x21 + 0xFF01)
    return ch


HOW = st.sampled_from(["plain", "plain", "plain", "pct", "pct-lower", "pct-twice", "entity", "fullwidth"])


@st.composite
def spelled(draw: st.DrawFn, text: str) -> str:
    """`text` with any of its characters written another way a reader would still decode."""
    return "".join(_encoded(ch, draw(HOW)) for ch in text)


@st.composite
def addresses(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        local = '"' + LOCAL_MARK + draw(st.text(alphabet=QTEXT, max_size=12)) + '"'
    else:
        local = LOCAL_MARK + draw(st.text(alphabet=ATEXT, max_size=12))
    kind = draw(st.sampled_from(["name", "ipv4", "ipv6"]))
    if kind == "name":
        domain = DOMAIN_MARK + draw(st.from_regex(r"[a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True))
    elif kind == "ipv4":
        domain = "[" + ".".join(str(draw(st.integers(0, 255))) for _ in range(4)) + "]"
    else:
        domain = "[IPv6:" + DOMAIN_MARK.lower() + "::" + str(draw(st.integers(0, 9999))) + "]"
    return local + "@" + domain


@st.composite
def in_text(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> tuple[str, str]:
    """(the text, the piece) with the piece set between arbitrary words."""
    piece = draw(inner)
    text = draw(AROUND) + draw(SEPARATORS) + draw(spelled(piece)) + draw(SEPARATORS) + draw(AROUND)
    return text, piece


def survivors(cleaned: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", cleaned).casefold()
    return [mark for mark in (LOCAL_MARK, DOMAIN_MARK) if mark.casefold() in folded]


@settings(max_examples=300, deadline=None)
@given(in_text(addresses()))
@example(('550 "QZL 7"@example.com', '"QZL 7"@example.com'))
@example(("550 QZL8@[127.0.0.1] x", "QZL8@[127.0.0.1]"))
def test_no_spelling_of_an_address_survives(case):
    text, _ = case
    cleaned = scrub(text)
    assert not survivors(cleaned), (text, cleaned)


@st.composite
def token_paths(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        token = make_unsubscribe_token(
            SECRET, draw(st.integers(1, 10**12)), draw(st.from_regex(r"[a-z0-9-]{1,30}", fullmatch=True))
        )
    else:
        token = make_confirm_token(
            SECRET,
            draw(st.integers(1, 10**12)),
            draw(st.integers(1, 99)),
            datetime(2026, 12, 1, tzinfo=UTC),
        )
    word = draw(st.sampled_from(["unsubscribe", "confirm"]))
    word = "".join(ch.upper() if draw(st.booleans()) else ch for ch in word)
    before = draw(st.sampled_from(["/", "//", "\\", "%2F", "%2f", "%252F"]))
    after = draw(st.sampled_from(["/", "//", "\\", "%2F", "%2f", "%252F"]))
    tail = draw(st.sampled_from(["", "?x=1", "#top", "/", " HTTP/1.1", '"']))
    return draw(st.sampled_from(["", "https://example.com", "GET "])) + before + word + after + draw(
        spelled(token)
    ) + tail, token


@settings(max_examples=300, deadline=None)
@given(token_paths(), AROUND)
@example(("/Unsubscribe/" + "MXxh.baim-2-Kd9Pv_UwBzNUnnw", "MXxh.baim-2-Kd9Pv_UwBzNUnnw"), "")
@example(("/unsubscribe%2F" + "MXxh.baim-2-Kd9Pv_UwBzNUnnw", "MXxh.baim-2-Kd9Pv_UwBzNUnnw"), "")
def test_no_spelling_of_a_link_token_survives(case, around):
    path, token = case
    cleaned = scrub(around + " " + path + " " + around)
    mac = token.split(".")[1]
    assert token not in cleaned and mac not in cleaned, cleaned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('bounce for "leak 7"@example.com', "bounce for [address]"),
        ("<leak8@[127.0.0.1]>", "<[address]>"),
        ("GET /Unsubscribe/abc.def HTTP/1.1", "GET /Unsubscribe/… HTTP/1.1"),
        ("/unsubscribe%2Fabc.def", "/unsubscribe/…"),
        ("/UNSUBSCRIBE//abc.def?x=1", "/UNSUBSCRIBE//…?x=1"),
        ("leak%2540example.com", "[address]"),
        ("100% of 5 delivered; attempt=2", "100% of 5 delivered; attempt=2"),
        ("reply\x00with\x1bnoise\n", "reply with noise\n"),
    ],
)
def test_scrub_examples(text, expected):
    assert scrub(text) == expected


def test_scrub_is_idempotent_on_plain_text():
    text = "sendgrid webhook: 2 received, 1 stored, 0 duplicate, 1 malformed, 0 suppressed"
    assert scrub(text) == text == scrub(scrub(text))
