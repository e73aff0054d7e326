"""Batches and outbox files for the outbox's tests: a batch of N readers of one series
email, and the files an outbox folder holds, with what is random in each batch taken out."""

from __future__ import annotations

import re
from pathlib import Path

from nurture.providers.base import Batch, Envelope, Sender
from tests.support.factories import at

SENT_AT = at("2026-12-01 15:00")


def batch_of(first: int, count: int, *, body_repeat: int = 1) -> Batch:
    envelopes = tuple(
        Envelope(
            str(n),
            f"r{n}@example.com",
            f"Reader {n}",
            "What a session is like",
            headers={
                "List-Unsubscribe": f"<https://mail.example.com/u/{n}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            substitutions={"-name-": f"Reader {n}", "-link-": f"https://mail.example.com/u/{n}"},
            stream="kap-intro",
            step=2,
        )
        for n in range(first, first + count)
    )
    return Batch(
        Sender("hello@example.com", "Practice", reply_to="hello@example.com"),
        "Hello -name-,\n"
        + "A line of the letter, the same for everyone.\n" * body_repeat
        + "Leave: -link-\n",
        "<p>Hello -name-,</p>"
        + "<p>A paragraph for everyone.</p>" * body_repeat
        + '<a href="-link-">Leave</a>',
        envelopes,
        sent_at=SENT_AT,
    )


def normalized(data: bytes) -> bytes:
    """The file without what is random in every batch: its message key and MIME boundary."""
    data = re.sub(rb"Message-ID: <[^>]+>", b"Message-ID: <key>", data)
    return re.sub(rb"={15}\d{19}==", b"BOUNDARY", data)


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.glob("*.eml")}
