"""The outbox writes RFC-clean .eml files: quoted-printable lines of at most 76 characters
(RFC 2045 6.7), headers folded at 76 where they can be, the pass's `now` as Date:, and
file names that say when, which email and which delivery."""

from __future__ import annotations

import errno
import os
import re
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.providers.base import Batch, Envelope, Sender
from nurture.providers.outbox import OutboxTransport, build_message
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at, make_app

START = at("2026-12-01 14:00")  # 09:00 in New York
LIMIT = 76
NAME = re.compile(r"^(\d{8}T\d{6}Z)-kap-intro-step(\d)-(\d+)\.eml$")


def too_long(data: bytes) -> list[str]:
    """Lines over 76 characters, except a header line that is one token no fold can split."""
    found = []
    in_headers = True
    for raw in data.split(b"\r\n"):
        line = raw.decode("ascii")
        if in_headers and not line:
            in_headers = False
        if len(line) <= LIMIT:
            continue
        rest = line.split(":", 1)[1] if in_headers and not line[:1].isspace() else line
        if in_headers and len(rest.split()) <= 1:
            continue  # e.g. a long List-Unsubscribe URL alone on its line
        found.append(line)
    return found


def test_every_line_of_a_pass_is_at_most_76_characters(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 3, START)
    assert send_due(app, at("2026-12-01 15:00")).sent == 3
    files = sorted(app.config.outbox_dir.glob("*.eml"))
    assert len(files) == 3
    for path in files:
        data = path.read_bytes()
        assert b"\n" not in data.replace(b"\r\n", b""), f"{path.name}: a bare line feed"
        assert not too_long(data), f"{path.name}: lines over {LIMIT}: {too_long(data)[:3]}"
        message = message_from_bytes(data, policy=default_policy)
        assert {
            part.get("Content-Transfer-Encoding") for part in message.walk() if not part.is_multipart()
        } == {"quoted-printable"}
        # The List-Unsubscribe URL survives folding as a plain <https://...>, not an encoded word.
        assert re.fullmatch(r"<https://\S+/unsubscribe/\S+>", str(message["List-Unsubscribe"]))


def test_the_outbox_date_is_the_pass_now_and_names_say_time_stream_step_delivery(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 2, START)
    now = at("2026-12-01 15:00")
    send_due(app, now)
    with transaction(app.engine) as session:
        ids = set(session.scalars(select(m.Delivery.id)))
    files = sorted(app.config.outbox_dir.glob("*.eml"))
    assert len(files) == 2
    for path in files:
        match = NAME.match(path.name)
        assert match, path.name
        stamp, step, delivery_id = match.groups()
        assert (stamp, step) == ("20261201T150000Z", "1") and int(delivery_id) in ids
        message = message_from_bytes(path.read_bytes(), policy=default_policy)
        assert parsedate_to_datetime(str(message["Date"])) == now


def test_a_delivery_written_twice_is_refused_even_at_another_time(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "outbox")
    envelope = Envelope("7", "sam@example.com", "Sam", "Hello", stream="kap-intro", step=1)
    first = Batch(
        Sender("hello@example.com", "Practice"),
        "text",
        "<p>html</p>",
        (envelope,),
        sent_at=at("2026-12-01 15:00"),
    )
    second = Batch(first.sender, first.text, first.html, first.envelopes, sent_at=at("2026-12-02 15:00"))
    assert [o.status for o in outbox.send(first)] == ["sent"]
    [refused] = outbox.send(second)
    assert refused.status == "failed" and "already holds delivery 7" in (refused.error or "")
    assert len(list(outbox.directory.glob("*.eml"))) == 1


def test_a_header_with_a_line_break_is_refused(tmp_path: Path) -> None:
    envelope = Envelope(
        "7",
        "sam@example.com",
        None,
        "Hello",
        headers={"List-Unsubscribe": "<https://x.example/u>\r\nBcc: a@b.example"},
    )
    batch = Batch(Sender("hello@example.com", "Practice"), "text", "<p>html</p>", (envelope,))
    try:
        build_message(batch, envelope)
    except ValueError as exc:
        assert "line break" in str(exc)
    else:
        raise AssertionError("a header with CR/LF was written")


def test_an_email_written_half_way_is_never_named_claimed_or_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up in the middle of the second email: the first is there whole; of the
    second there is nothing, under its name, as a claim or as a temporary file, and it failed."""
    outbox = OutboxTransport(tmp_path / "outbox")
    envelopes = tuple(
        Envelope(str(n), f"r{n}@example.com", None, "Hello", stream="kap-intro", step=1) for n in (7, 8)
    )
    batch = Batch(
        Sender("hello@example.com", "Practice"),
        "text " * 2000,
        "<p>html</p>",
        envelopes,
        sent_at=at("2026-12-01 15:00"),
    )
    real_write = os.write
    calls = 0

    def write_half_then_fill(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, data)
        if calls == 2:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write_half_then_fill)
    first, second = outbox.send(batch)
    monkeypatch.undo()
    assert first.status == "sent"
    assert second.status == "failed" and "not written" in (second.error or "")
    [written] = outbox.directory.glob("*.eml")
    assert written.name == "20261201T150000Z-kap-intro-step1-7.eml"
    assert message_from_bytes(written.read_bytes(), policy=default_policy)["To"] == "r7@example.com"
    assert sorted(p.name for p in outbox.directory.iterdir()) == [".deliveries", written.name]
    assert [p.name for p in (outbox.directory / ".deliveries").iterdir()] == ["7.eml"]
    # The failed one was never claimed: it can be written once the disk has room.
    [again] = outbox.send(Batch(batch.sender, batch.text, batch.html, envelopes[1:], sent_at=batch.sent_at))
    assert again.status == "sent"
