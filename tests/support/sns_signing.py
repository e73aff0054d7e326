"""SNS as AWS signs it, for tests: an RSA signing certificate served over https from a
local server (trusted only through `nurture.providers.ses.sns.trust_for_tests`), messages
signed with SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA), and a SubscribeURL
whose visits the server records."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.tls import self_signed

CERT_PATH = "/SimpleNotificationService-test.pem"
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path == CERT_PATH:
            body = owner.certificate_pem
            with owner.lock:
                owner.certificate_fetches += 1
        else:
            with owner.lock:
                owner.confirmations.append(self.path)
            body = b"<ConfirmSubscriptionResponse/>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: SnsSigner


class SnsSigner:
    def __init__(self, folder: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com (test)")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.tls_cert, tls_key = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, tls_key)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.lock = threading.Lock()
        self.certificate_fetches = 0
        self.confirmations: list[str] = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SnsSigner:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign(self, fields: dict[str, Any], version: str = "1") -> dict[str, Any]:
        text = "".join(f"{name}\n{fields[name]}\n" for name in SIGNED[fields["Type"]] if name in fields)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), digest)
        return {
            **fields,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": self.origin + CERT_PATH,
        }

    def notification(
        self,
        topic: str,
        record: dict[str, Any],
        *,
        version: str = "1",
        when: datetime | None = None,
        number: int = 1,
    ) -> bytes:
        fields = {
            "Type": "Notification",
            "MessageId": f"00000000-0000-0000-0000-{number:012d}",
            "TopicArn": topic,
            "Message": json.dumps(record),
            "Timestamp": (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "UnsubscribeURL": self.origin + "/?Action=Unsubscribe",
        }
        return json.dumps(self.sign(fields, version)).encode()

    def confirmation(self, topic: str, *, version: str = "1") -> bytes:
        fields = {
            "Type": "SubscriptionConfirmation",
            "MessageId": "11111111-0000-0000-0000-000000000001",
            "Token": "token-1",
            "TopicArn": topic,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": self.origin + "/?Action=ConfirmSubscription&Token=token-1",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        return json.dumps(self.sign(fields, version)).encode()
