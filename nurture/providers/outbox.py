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


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._claimed = directory / ".deliveries"
        self._claimed.mkdir(exist_ok=True)

    def path_for(self, envelope: Envelope, sent_at: datetime) -> Path:
        stamp = sent_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        parts = [stamp]
        if envelope.stream:
            parts.append(_safe(envelope.stream))
            if envelope.step is not None:
                parts.append(f"step{envelope.step}")
        parts.append(_safe(envelope.delivery_id))
        return self.directory / ("-".join(parts) + ".eml")

    def send(self, batch: Batch) -> list[Outcome]:
        outcomes: list[Outcome] = []
        sent_at = batch.sent_at or datetime.now(UTC)
        writer = BatchWriter(batch if batch.sent_at else replace(batch, sent_at=sent_at))
        # One key per batch, as SendGrid gives one X-Message-Id per request: the ledger then
        # records each batch's outcome in one statement instead of one per email. Each
        # file's Message-ID is that key and its delivery id, so it is still unique.
        batch_key = make_msgid(domain=batch.sender.from_email.rpartition("@")[2]).strip("<>")
        key_local, _, key_domain = batch_key.rpartition("@")
        for envelope in batch.envelopes:
            target = self.path_for(envelope, sent_at)
            message_id = f"<{key_local}.{_safe(envelope.delivery_id)}@{key_domain}>"
            data = writer.message(envelope, message_id)
            temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                temp.write_bytes(data)
            except OSError as exc:
                if not outcomes:
                    # Nothing of this batch was written: no later request will fare better.
                    raise FatalTransportError(f"the outbox folder cannot be written: {exc.strerror}") from exc
                outcomes.append(Outcome(envelope.delivery_id, "failed", error=f"not written: {exc.strerror}"))
                continue
            try:
                # os.link fails if the name exists: a second write of one delivery is refused.
                os.link(temp, self._claimed / f"{_safe(envelope.delivery_id)}.eml")
                os.link(temp, target)
            except FileExistsError:
                outcomes.append(
                    Outcome(
                        envelope.delivery_id,
                        "failed",
                        error=f"outbox already holds delivery {envelope.delivery_id}",
                    )
                )
                continue
            finally:
                temp.unlink(missing_ok=True)
            outcomes.append(Outcome(envelope.delivery_id, "sent", provider_message_id=batch_key))
        return outcomes

    def close(self) -> None:
        pass
