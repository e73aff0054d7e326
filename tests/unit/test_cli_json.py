"""`subscribers list --json` writes its rows with a faster encoder; its text must not change."""

from __future__ import annotations

import enum
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from nurture.cli.subscribers import _json, _json_rows


class Status(enum.StrEnum):
    ACTIVE = "active"


TRICKY: dict[str, Any] = {
    "id": 7,
    "email": 'zoë+"q"\\@例え.jp\u2028\u2029\x00\t',
    "first_name": None,
    "timezone": "America/New_York",
    "status": Status.ACTIVE,
    "created_at": datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=timezone(timedelta(hours=-5))),
    "naive": datetime(2026, 1, 2),
    "day": date(2026, 1, 1),
    "ratio": 0.1 + 0.2,
    "infinite": float("inf"),
    "yes": True,
    "no": False,
    "big": -(10**40),
    "\u00e9 key": "",
}


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{}],
        [{"id": 1}],
        [TRICKY],
        [TRICKY, {}, {"id": 2, "email": "b@example.com"}],
        [{"tags": ["a", "b"], "extra": {"x": [1]}}],  # nested: falls back to json.dumps
    ],
)
def test_rows_are_written_exactly_as_json_dumps_writes_them(rows: list[dict[str, Any]]) -> None:
    assert _json_rows(rows) == _json(rows)


def test_the_text_reads_back_as_the_rows() -> None:
    written = json.loads(_json_rows([TRICKY]))
    assert written[0]["email"] == TRICKY["email"]
    assert written[0]["created_at"] == "2026-01-02 03:04:05.006789-05:00"
    assert written[0]["status"] == "active"
