"""Reading a signed webhook body as a list of events, with bounded nesting.

`json.loads` recurses once per level of nesting: a body 100,000 levels deep ends
in RecursionError, and even a few hundred levels make every later walk over the
data costly. SendGrid's events are flat objects (a category list at most), so:

- a body no deeper than MAX_NESTING is parsed as usual (the common case; the
  depth is measured first, with regular expressions, without recursion);
- otherwise the top-level array is cut into its items without parsing them, and
  an item deeper than allowed becomes `TOO_DEEP` (counted as one malformed event)
  while the items beside it are parsed and stored.

Numbers longer than MAX_NUMBER_DIGITS and the non-standard NaN/Infinity become
None instead of failing the whole body (int() refuses over 4,300 digits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, Final

from nurture.errors import WebhookRejected

MAX_NESTING = 32  # levels, counting the batch's own array
MAX_NUMBER_DIGITS = 40


class _TooDeep:
    """Stands in for an event nested deeper than MAX_NESTING."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TOO_DEEP"


TOO_DEEP: Final = _TooDeep()

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _number(text: str) -> int | None:
    return int(text) if len(text.lstrip("-")) <= MAX_NUMBER_DIGITS else None


def _constant(name: str) -> None:
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_int=_number, parse_constant=_constant)
    except (ValueError, RecursionError):
        raise WebhookRejected(400, "the signed body is not JSON") from None


def nesting_depth(text: str) -> int:
    """How deeply the JSON text nests arrays and objects (exact for valid JSON)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def parse_batch(payload: str) -> list[Any]:
    """The events of a signed body; raises WebhookRejected(400) if it is not a JSON array."""
    if nesting_depth(payload) <= MAX_NESTING:
        data = _loads(payload)
        if not isinstance(data, list):
            raise WebhookRejected(400, "the signed body is not a JSON array of events")
        return data
    return [_loads(item) if depth < MAX_NESTING else TOO_DEEP for item, depth in _top_level_items(payload)]


def _top_level_items(payload: str) -> Iterator[tuple[str, int]]:
    """Each item of the top-level array as (its text, its own nesting depth), unparsed."""
    text = payload.strip()
    if not text.startswith("["):
        raise WebhookRejected(400, "the signed body is not a JSON array of events")
    depth = 0
    deepest = 0
    start = 1
    closed = False
    for token in _TOKEN.finditer(text):
        mark = token.group()
        if closed:
            raise WebhookRejected(400, "the signed body is not JSON")
        if mark == "[" or mark == "{":
            depth += 1
            deepest = max(deepest, depth - 1)
        elif mark == "]" or mark == "}":
            depth -= 1
            if depth == 0:
                closed = True
                item = text[start : token.start()]
                if item.strip() or start > 1:
                    yield item, deepest
        elif mark == "," and depth == 1:
            yield text[start : token.start()], deepest
            start, deepest = token.end(), 0
    if not closed or text[-1] != "]":
        raise WebhookRejected(400, "the signed body is not JSON")
