"""Scrubbing free text of what names a person: email addresses and link tokens.

Everything that may reach the store or a log from outside (provider event details,
log records) goes through `scrub` first.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import unquote

# An address: a quoted local part ("leak 7", with escapes) or a run of anything an
# unquoted one may hold (over-taking a neighbouring "email=" is harmless), then a
# domain or an address literal ([127.0.0.1], [IPv6:...]).
_LOCAL = r'(?:"(?:[^"\\\n]|\\.){0,256}\\?"|[^\s<>"(),;:@\[\]\\]+)'
_DOMAIN = r"(?:\[[^\[\]\s]{0,256}\]|[^\s<>\"(),;:@\[\]\\]+)"
_ADDRESS = re.compile(_LOCAL + "(?:@|%40)" + _DOMAIN)
# A link token after /confirm/ or /unsubscribe/ in any case, with doubled or backslashed
# separators; and anything shaped like a token (base64url "." a 16-byte MAC) wherever it is.
_TOKEN_PATH = re.compile(r"([/\\]+(?:confirm|unsubscribe)[/\\]+)[^\s/\\?#\"'<>]+", re.IGNORECASE)
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_DECODE_ROUNDS = 10  # each round undoes one layer; ten layers deep is no accident


def _decoded(text: str) -> str:
    """The text as a reader would see it: percent-escapes (even doubled), HTML entities
    and compatibility forms (fullwidth ＠) undone, so no spelling hides an address."""
    for _ in range(_DECODE_ROUNDS):
        plain = unicodedata.normalize("NFKC", html.unescape(unquote(text)))
        if plain == text:
            break
        text = plain
    return text


def scrub(text: str) -> str:
    """Blank out email addresses and link tokens, however they are spelled.

    The answer is the decoded text (see `_decoded`), with control characters other than
    newline and tab made spaces: what the store or a log line gets is what was checked."""
    text = _CONTROL.sub(" ", _decoded(text))
    text = _ADDRESS.sub("[address]", text)
    text = _TOKEN_PATH.sub(r"\1…", text)
    return _TOKEN_SHAPE.sub("…", text)
