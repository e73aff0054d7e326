"""The default transport: every message becomes an RFC 5322 .eml file in the outbox.

Nothing leaves the machine. Files are written atomically (temp file, then
link); writing the same delivery twice is refused, so a double send would show
up as an error instead of hiding in a second file. The refusal rests on a hard
link named by delivery id alone in `.deliveries/` (the visible name holds the
time, which differs from one pass to the next).

A file is named for when it was sent, which email it is and its delivery:
`20261126T140000Z-kap-intro-step3-42.eml` (one-off emails without a stream, such as
the confirmation, are `20261126T140000Z-confirm-....eml`). The names sort by time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Outcome, apply_substitutions, ascii_address
from nurture.providers.mime_writer import POLICY, BatchWriter, fold_list_header

__all__ = ["POLICY", "OutboxTransport", "build_message"]


def build_message(batch: Batch, envelope: Envelope, *, message_id: str | None = None) -> EmailMessage:
    """The complete MIME message one envelope of a batch stands for."""
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(batch.sender.from_name, addr_spec=batch.sender.from_email)
    message["To"] = Address(envelope.to_name or "", addr_spec=ascii_address(envelope.to_email))
    if batch.sender.reply_to:
        message["Reply-To"] = batch.sender.reply_to
    message["Subject"] = envelope.subject
    message["Date"] = format_datetime(batch.sent_at or datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=batch.sender.from_email.rpartition("@")[2])
    for name, value in envelope.headers.items():
        if name.lower().startswith("list-"):
            message.set_raw(name, fold_list_header(name, value))
        else:
            message[name] = value
    # text/plain first, then text/html: clients show the last part they can.
    message.set_content(
        apply_substitutions(batch.text, envelope.substitutions), subtype="plain", cte="quoted-printable"
    )
    message.add_alternative(
        apply_substitutions(batch.html, envelope.substitutions), subtype="html", cte="quoted-printable"
    )
    return message


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _write(path: str, data: bytes) -> None:
    """`data` as the whole of a new or emptied file: three system calls where `Path.write_bytes`
    makes six (its buffered file also asks the file's size, place and whether it is a terminal)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it all at once, save on a full disk
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._claimed = directory / ".deliveries"
        self._claimed.mkdir(exist_ok=True)
        # The pass hands over several batches at once (to keep requests in flight while a
        # provider answers); here nothing waits on a network, and writers side by side only
        # contend in the kernel for the folder's lock (three times the system time, measured,
        # and a slower pass). So batches are written one at a time; another thread meanwhile
        # builds and claims the next ones.
        self._writing = threading.Lock()

    def send(self, batch: Batch) -> list[Outcome]:
        sent_at = batch.sent_at or datetime.now(UTC)
        writer = BatchWriter(batch if batch.sent_at else replace(batch, sent_at=sent_at))
        # One key per batch, as SendGrid gives one X-Message-Id per request: the ledger then
        # records each batch's outcome in one statement instead of one per email. Each
        # file's Message-ID is that key and its delivery id, so it is still unique.
        batch_key = make_msgid(domain=batch.sender.from_email.rpartition("@")[2]).strip("<>")
        stamp = _stamp(sent_at)
        with self._writing:
            return self._write_all(batch, writer, stamp, batch_key)

    def _write_all(self, batch: Batch, writer: BatchWriter, stamp: str, batch_key: str) -> list[Outcome]:
        outcomes: list[Outcome] = []
        key_local, _, key_domain = batch_key.rpartition("@")
        directory, claimed, pid = str(self.directory), str(self._claimed), os.getpid()
        for envelope in batch.envelopes:
            safe_id = _safe(envelope.delivery_id)
            name = _file_name(stamp, envelope, safe_id)
            data = writer.message(envelope, f"<{key_local}.{safe_id}@{key_domain}>")
            # Written whole under a temporary name first, then named: the claim and the visible
            # name only ever stand for a complete email. Not written straight under the claim's
            # name (open with O_EXCL would refuse a second write just as well, one call less): a
            # crash mid-write would leave a claim holding half an email, which would refuse the
            # delivery's next try for good while no email of it is in the outbox.
            temp = f"{directory}/.{name}.{pid}.tmp"
            try:
                _write(temp, data)
            except OSError as exc:
                Path(temp).unlink(missing_ok=True)
                if not outcomes:
                    # Nothing of this batch was written: no later request will fare better.
                    raise FatalTransportError(f"the outbox folder cannot be written: {exc.strerror}") from exc
                outcomes.append(Outcome(envelope.delivery_id, "failed", error=f"not written: {exc.strerror}"))
                continue
            try:
                # link fails if the name exists: a second write of one delivery is refused.
                os.link(temp, f"{claimed}/{safe_id}.eml")
            except FileExistsError:
                Path(temp).unlink(missing_ok=True)
                outcomes.append(
                    Outcome(
                        envelope.delivery_id,
                        "failed",
                        error=f"outbox already holds delivery {envelope.delivery_id}",
                    )
                )
                continue
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            # The temporary name becomes the visible one in one step (one call, where a second
            # link and an unlink were two). The claim above, not this, refuses a second write.
            os.rename(temp, f"{directory}/{name}")
            outcomes.append(Outcome(envelope.delivery_id, "sent", provider_message_id=batch_key))
        return outcomes

    def close(self) -> None:
        pass


def _stamp(sent_at: datetime) -> str:
    return sent_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _file_name(stamp: str, envelope: Envelope, safe_id: str) -> str:
    """`20261126T140000Z-kap-intro-step3-42.eml`: when, which email, which delivery."""
    if not envelope.stream:
        return f"{stamp}-{safe_id}.eml"
    if envelope.step is None:
        return f"{stamp}-{_safe(envelope.stream)}-{safe_id}.eml"
    return f"{stamp}-{_safe(envelope.stream)}-step{envelope.step}-{safe_id}.eml"
