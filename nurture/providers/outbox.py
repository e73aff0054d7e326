"""The default transport: every message becomes an RFC 5322 .eml file in the outbox.

Nothing leaves the machine. Files are written atomically (temp file, then
rename) and named by delivery id; writing the same delivery twice is refused,
so a double send would show up as an error instead of hiding in an overwrite.
"""

from __future__ import annotations

import os
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from pathlib import Path

from nurture.providers.base import Batch, Envelope, Outcome, apply_substitutions


def build_message(batch: Batch, envelope: Envelope, *, message_id: str | None = None) -> EmailMessage:
    """The complete MIME message one envelope of a batch stands for."""
    # Lines up to RFC 5322's 998 characters: a long List-Unsubscribe URL stays on its own line.
    message = EmailMessage(policy=SMTP.clone(max_line_length=998))
    message["From"] = Address(batch.sender.from_name, addr_spec=batch.sender.from_email)
    message["To"] = Address(envelope.to_name or "", addr_spec=envelope.to_email)
    if batch.sender.reply_to:
        message["Reply-To"] = batch.sender.reply_to
    message["Subject"] = envelope.subject
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = message_id or make_msgid(domain=batch.sender.from_email.rpartition("@")[2])
    for name, value in envelope.headers.items():
        message[name] = value
    # text/plain first, then text/html: clients show the last part they can.
    message.set_content(apply_substitutions(batch.text, envelope.substitutions), subtype="plain", cte="quoted-printable")
    message.add_alternative(apply_substitutions(batch.html, envelope.substitutions), subtype="html", cte="quoted-printable")
    return message


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, delivery_id: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in delivery_id)
        return self.directory / f"{safe}.eml"

    def send(self, batch: Batch) -> list[Outcome]:
        outcomes = []
        for envelope in batch.envelopes:
            target = self.path_for(envelope.delivery_id)
            message_id = make_msgid(domain=batch.sender.from_email.rpartition("@")[2])
            data = build_message(batch, envelope, message_id=message_id).as_bytes()
            temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            temp.write_bytes(data)
            try:
                # os.link fails if the target exists: a second write of one delivery is refused.
                os.link(temp, target)
            except FileExistsError:
                outcomes.append(Outcome(envelope.delivery_id, "failed", error=f"outbox already holds {target.name}"))
                continue
            finally:
                temp.unlink(missing_ok=True)
            outcomes.append(Outcome(envelope.delivery_id, "sent", provider_message_id=message_id.strip("<>")))
        return outcomes

    def close(self) -> None:
        pass
