"""Delivery status notifications (RFC 3464) as a receiving mail server writes them, and a
Maildir to put them in."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email import message_from_string
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path


def dsn(
    to: str,
    recipient: str,
    status: str,
    *,
    action: str = "failed",
    original_message_id: str | None = None,
    diagnostic: str = "smtp; 550 5.1.1 <user>: Recipient address rejected: User unknown",
    when: datetime | None = None,
) -> bytes:
    """A multipart/report DSN sent to `to` (the envelope sender: a VERP bounce address)."""
    report = EmailMessage()
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(when or datetime.now(UTC))
    report["Message-ID"] = make_msgid(domain="mx.example.net")
    report.set_content(
        "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you...\n"
    )
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")
    status_part = EmailMessage()
    status_part.set_type("message/delivery-status")
    per_message = "Reporting-MTA: dns; mx.example.net\nArrival-Date: Tue, 1 Dec 2026 15:00:00 +0000\n"
    per_recipient = (
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\nStatus: {status}\nRemote-MTA: dns; mx.example.com\n"
        f"Diagnostic-Code: {diagnostic}\n"
    )
    status_part.set_payload([message_from_string(per_message), message_from_string(per_recipient)])
    report.attach(status_part)
    headers = EmailMessage()
    headers.set_type("text/rfc822-headers")
    headers.set_payload(
        f"From: The Clinic <clinic@example.org>\nTo: {recipient}\nSubject: Week 1\n"
        + (f"Message-ID: {original_message_id}\n" if original_message_id else "")
    )
    report.attach(headers)
    return bytes(report)


def maildir(path: Path) -> mailbox.Maildir:
    return mailbox.Maildir(path, create=True)


def auto_reply(to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.com"
    message["To"] = to
    message["Subject"] = "Out of office"
    message.set_content("I am away until Monday.")
    return bytes(message)
