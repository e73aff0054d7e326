"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with STARTTLS required (a test
certificate; clients trust it through its own file) and AUTH LOGIN/PLAIN after TLS.

It keeps every message it accepts and can be told to answer a recipient with 4xx a
few times, with 5xx, to answer the data with 4xx, or to cut the connection once the
message's data has arrived (before its reply): what a relay does on a bad day.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.aws import free_port
from tests.support.tls import self_signed

USERNAME = "nurture"
PASSWORD = "relay-password-for-tests"


@dataclass
class Received:
    mail_from: str
    rcpt_to: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = message_from_bytes(self.data, policy=policy.default)  # type: ignore[assignment]
        return parsed

    @property
    def to_email(self) -> str:
        return self.rcpt_to

    @property
    def raw_subject(self) -> str:
        return str(self.message["Subject"])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        relay = self.server
        with relay.lock:
            if address in relay.refuse:
                return "550 5.1.1 No such user here"
            if relay.defer_rcpt[address] > 0:
                relay.defer_rcpt[address] -= 1
                return "451 4.3.2 Please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        relay = self.server
        if relay.latency:
            await asyncio.sleep(relay.latency)
        rcpt = envelope.rcpt_tos[0]
        with relay.lock:
            if relay.defer_data[rcpt] > 0:
                relay.defer_data[rcpt] -= 1
                return "452 4.3.1 Insufficient system storage"
            relay.received.append(Received(envelope.mail_from, rcpt, bytes(envelope.content)))
            cut = rcpt in relay.cut_after_data
        if cut:
            # The message arrived and is queued; the reply never leaves.
            server.transport.abort()
        return "250 2.0.0 Ok: queued as " + str(len(relay.received))


class SmtpServer:
    def __init__(self, folder: Path, *, require_auth: bool = True) -> None:
        self.cert_file, key_file = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, key_file)
        self.port = free_port()
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self.defer_rcpt: Counter[str] = Counter()
        self.defer_data: Counter[str] = Counter()
        self.cut_after_data: set[str] = set()
        self.latency = 0.0
        self.logins = 0

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                USERNAME.encode(),
                PASSWORD.encode(),
            )
            if ok:
                with self.lock:
                    self.logins += 1
            return AuthResult(success=ok, handled=False)

        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            auth_required=require_auth,
            authenticator=authenticate,
            ready_timeout=10,
        )

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.received)
