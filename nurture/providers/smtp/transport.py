"""SMTP relay transport: each envelope as one complete message over a small pool of connections.

For Paubox, LuxSci (both sign a HIPAA BAA), Postmark, Mailgun, or a practice's own
Postfix. Each message is the same MIME message the outbox writes (text and HTML parts,
List-Unsubscribe headers), with:

- a Message-ID `<nurture.ID.TAG@sender domain>` and the envelope sender (MAIL FROM, so
  the Return-Path) `bounces+ID-TAG@bounce domain` (VERP): a bounce names its delivery,
  and TAG (keyed with NURTURE_SECRET_KEY) proves the address is ours;
- STARTTLS (port 587) or implicit TLS (465) with the certificate verified against the
  system's CAs; plain SMTP only to this machine (the config refuses anything else).

What each answer means for one message:

- 250 after the message's data: "sent" (the relay queued it).
- 4xx (to MAIL, RCPT or the data): retried after a backoff on the same pass, then
  "failed" with the relay's words (`nurture deliveries release ID` sends it again).
- 5xx to RCPT or to the data: "failed" for that recipient.
- 5xx to MAIL FROM, or a refused login: no message can go: the pass stops.
- a connection lost before the data was sent: retried on a new connection (nothing was
  queued); lost after the data went out and before the reply: "unknown" (it may have
  been queued), never retried.

Connections are kept open between messages (up to `pool_size`, one thread each) and
closed with the transport. Nothing here logs an address or the password.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.utils import make_msgid
from typing import TYPE_CHECKING

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Outcome, StoppedMidBatch, ascii_address
from nurture.providers.outbox import build_message
from nurture.tokens import bounce_tag

if TYPE_CHECKING:
    from nurture.config import Config

log = logging.getLogger(__name__)

MAX_DETAIL = 300
_CRLF = b"\r\n"
_LEADING_DOT = re.compile(rb"(?m)^\.")


class _Retry(Exception):
    """Nothing was queued; try this message again (after `delay`)."""

    def __init__(self, reason: str, *, temporary_reply: bool, connection_ok: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary_reply = temporary_reply  # the relay answered 4xx (not a broken connection)
        self.connection_ok = connection_ok  # the connection can carry the next message


def _words(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def verp_address(delivery_id: str, domain: str, secret: str) -> str:
    return f"bounces+{delivery_id}-{bounce_tag(secret, delivery_id)}@{domain}"


class SmtpTransport:
    """Sends each envelope over pooled SMTP connections. Safe to use from many threads."""

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        bounce_domain: str,
        secret: str,
        pool_size: int = 4,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.bounce_domain = bounce_domain
        self._secret = secret
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random.Random()
        # The system's CAs (SSL_CERT_FILE / SSL_CERT_DIR honoured, as OpenSSL does).
        self._context = tls_context or ssl.create_default_context()
        self._idle: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._stopped: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> SmtpTransport:
        smtp = config.smtp
        assert smtp.host  # checked when the config was read
        return cls(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=config.secrets.smtp_password,
            bounce_domain=smtp.bounce_domain or config.sender.from_email.rpartition("@")[2],
            secret=config.secrets.require_secret_key(),
            pool_size=smtp.pool_size,
            timeout=config.delivery.request_timeout,
        )

    def __repr__(self) -> str:  # never the password
        return f"SmtpTransport(host={self.host!r}, port={self.port}, security={self.security!r})"

    # ------------------------------------------------------------------ connections

    def _connect(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self.security == "tls":
            connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context)
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            connection.ehlo()
            if self.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise FatalTransportError(
                        f"the SMTP relay {self.host}:{self.port} does not offer STARTTLS: nurture will not "
                        "send mail over it unencrypted. Use the relay's TLS port (smtp.security: tls, "
                        "port 465) or its submission port 587."
                    )
                connection.starttls(context=self._context)
                connection.ehlo()
            if self.username:
                if not self._password:
                    raise FatalTransportError(
                        "smtp.username is set but NURTURE_SMTP_PASSWORD is not: export the relay's password."
                    )
                connection.login(self.username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            connection.close()
            raise FatalTransportError(
                f"the SMTP relay refused the login ({exc.smtp_code}): check smtp.username and "
                "NURTURE_SMTP_PASSWORD."
            ) from None
        except ssl.SSLCertVerificationError as exc:
            connection.close()
            raise FatalTransportError(
                f"the SMTP relay's certificate could not be verified ({exc.verify_message}): nurture "
                "sends only to a relay whose certificate checks. Check smtp.host is the name on it."
            ) from None
        except BaseException:
            connection.close()
            raise
        return connection

    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        """A connection, and whether it was kept from an earlier message (it may have gone stale)."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            return self._connect(), False

    def close(self) -> None:
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                return
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()

    # ------------------------------------------------------------------ sending

    def message_bytes(self, batch: Batch, envelope: Envelope) -> tuple[bytes, str]:
        """The message as sent, and its Message-ID (recorded as the provider's message id)."""
        domain = batch.sender.from_email.rpartition("@")[2]
        key = envelope.custom_args.get("delivery_id", envelope.delivery_id)  # the message key
        tag = bounce_tag(self._secret, key)
        message_id = make_msgid(idstring=f"{key}.{tag}", domain=domain)
        message = build_message(batch, envelope, message_id=message_id)
        return message.as_bytes(), message_id.strip("<>")

    def send(self, batch: Batch) -> list[Outcome]:
        if not batch.envelopes:
            raise ValueError("a batch needs at least one envelope")
        if self._stopped:
            raise FatalTransportError(self._stopped)
        outcomes: list[Outcome] = []
        with self._slots:
            for envelope in batch.envelopes:
                try:
                    outcomes.append(self._send_one(batch, envelope))
                except FatalTransportError as exc:
                    with self._lock:
                        self._stopped = str(exc)
                    if outcomes:
                        raise StoppedMidBatch(str(exc), outcomes) from None
                    raise
        return outcomes

    def _send_one(self, batch: Batch, envelope: Envelope) -> Outcome:
        delivery_id = envelope.delivery_id
        data, message_id = self.message_bytes(batch, envelope)
        sender = verp_address(
            envelope.custom_args.get("delivery_id", delivery_id), self.bounce_domain, self._secret
        )
        recipient = ascii_address(envelope.to_email)
        attempt = 0
        stale_retried = False
        while True:
            try:
                connection, reused = self._checkout()
            except FatalTransportError:
                raise
            except (OSError, smtplib.SMTPException) as exc:
                reason = f"could not connect to {self.host}:{self.port} ({type(exc).__name__})"
                if attempt < self.max_retries:
                    attempt += 1
                    self._sleep(self._backoff(attempt))
                    continue
                return Outcome(delivery_id, "failed", error=f"{reason} on {attempt + 1} attempts")
            try:
                reply = self._transaction(connection, sender, recipient, data)
            except _Retry as retry:
                if retry.connection_ok:
                    self._idle.put(connection)
                if reused and not retry.temporary_reply and not stale_retried:
                    # A kept connection the relay had closed meanwhile: a new one, at once.
                    stale_retried = True
                    continue
                if attempt < self.max_retries:
                    attempt += 1
                    delay = self._backoff(attempt)
                    log.warning(
                        "SMTP: %s; retry %d of %d in %.1fs", retry.reason, attempt, self.max_retries, delay
                    )
                    self._sleep(delay)
                    continue
                what = "kept answering 4xx" if retry.temporary_reply else "kept failing"
                return Outcome(
                    delivery_id, "failed", error=f"the relay {what} on {attempt + 1} attempts: {retry.reason}"
                )
            except _Unknown as unknown:
                return Outcome(delivery_id, "unknown", error=str(unknown))
            except _Refused as refused:
                self._idle.put(connection)
                return Outcome(delivery_id, "failed", error=str(refused))
            except FatalTransportError:
                connection.close()
                raise
            self._idle.put(connection)
            log.debug("SMTP: queued (%s)", reply)
            return Outcome(delivery_id, "sent", provider_message_id=message_id)

    def _transaction(self, connection: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> str:
        """One message on one connection. Returns the relay's words on 250 (its queue id)."""
        try:
            code, reply = connection.mail(sender)
            if code != 250:
                self._reset(connection, code)
                if code >= 500:
                    raise FatalTransportError(
                        f"the SMTP relay refuses the sender ({code} {_words(reply)}): check "
                        "sender.from_email and smtp.bounce_domain are allowed to send through this relay."
                    )
                raise _Retry(
                    f"MAIL answered {code} {_words(reply)}", temporary_reply=True, connection_ok=True
                )
            code, reply = connection.rcpt(recipient)
            if code not in (250, 251):
                self._reset(connection, code)
                if code >= 500:
                    raise _Refused(f"the relay refused the recipient ({code} {_words(reply)})")
                raise _Retry(
                    f"RCPT answered {code} {_words(reply)}", temporary_reply=True, connection_ok=True
                )
            connection.putcmd("data")
            code, reply = connection.getreply()
            if code != 354:
                self._reset(connection, code)
                if code >= 500:
                    raise _Refused(f"the relay refused the message ({code} {_words(reply)})")
                raise _Retry(
                    f"DATA answered {code} {_words(reply)}", temporary_reply=True, connection_ok=True
                )
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # Before the message went out: nothing was queued.
            connection.close()
            raise _Retry(
                f"the connection broke before the message was sent ({type(exc).__name__})",
                temporary_reply=False,
            ) from None
        # From here on the relay may queue the message at any moment.
        body = _LEADING_DOT.sub(b"..", data)
        if not body.endswith(_CRLF):
            body += _CRLF
        try:
            connection.send(body + b"." + _CRLF)
            code, reply = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            connection.close()
            raise _Unknown(
                f"the connection to the relay broke after the message was sent ({type(exc).__name__}); "
                "it may have been queued"
            ) from None
        if code == 250:
            return _words(reply)[:200]
        if code >= 500:
            raise _Refused(f"the relay refused the message ({code} {_words(reply)})")
        raise _Retry(
            f"the message was answered {code} {_words(reply)}", temporary_reply=True, connection_ok=True
        )

    @staticmethod
    def _reset(connection: smtplib.SMTP, code: int) -> None:
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            connection.close()
            raise _Retry(
                f"the relay closed the connection after {code}", temporary_reply=code < 500
            ) from None

    def _backoff(self, attempt: int) -> float:
        return self._random.uniform(
            self.backoff_base / 2, min(self.backoff_cap, self.backoff_base * (2**attempt))
        )


class _Unknown(Exception):
    pass


class _Refused(Exception):
    pass
