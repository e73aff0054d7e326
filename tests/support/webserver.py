"""A real uvicorn server on 127.0.0.1 serving nurture's web app, in a thread, for tests.

The port is taken by binding the socket first, so the config's public_base_url can
name it before the app exists (the links in emails then point at this server).
Clients must not use proxies: `client()` sets trust_env=False.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nurture.app import App
from tests.support.factories import make_app


def bind_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


@contextmanager
def running(asgi: Any, sock: socket.socket, **overrides: Any) -> Iterator[str]:
    """Serve `asgi` on the bound socket with nurture's own uvicorn settings; yield the base URL."""
    import uvicorn

    from nurture.web.site import server_config

    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(server_config(asgi, host=host, port=port, **overrides))
    failure: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start: {failure[0] if failure else 'thread ended'}")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class LiveWeb:
    url: str
    app: App

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, follow_redirects=False, timeout=10, **kwargs)


@contextmanager
def live_web(
    tmp_path: Path,
    *,
    environ: dict[str, str] | None = None,
    app_options: dict[str, Any] | None = None,
    tls: tuple[Path, Path] | None = None,
    **overrides: Any,
) -> Iterator[LiveWeb]:
    """A project in tmp_path whose web.public_base_url is this server, served for the duration;
    over https with `tls` (certificate file, key file: tests.support.tls)."""
    from nurture.web.site import create_app

    sock = bind_socket()
    port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    overrides.setdefault("web.public_base_url", f"{scheme}://127.0.0.1:{port}")
    app = make_app(tmp_path, environ=environ, **overrides)
    served = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    try:
        with running(create_app(app, **(app_options or {})), sock, **served) as url:
            yield LiveWeb(url.replace("http://", f"{scheme}://", 1), app)
    finally:
        app.close()


# ---------------------------------------------------------------- signing like SendGrid


class WebhookSigner:
    """A fresh EC P-256 key pair; signs bodies the way SendGrid's Signed Event Webhook does."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode("ascii")

    def sign(self, body: str, timestamp: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        raw = self.private_key.sign((timestamp + body).encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(raw).decode("ascii")

    def headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": self.sign(body, stamp),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    @property
    def environ(self) -> dict[str, str]:
        return {"NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_key}


def webhook_body(events: Sequence[Any]) -> str:
    """As SendGrid sends it: a JSON array, with the CRLF its own test vectors end in."""
    return json.dumps(list(events)) + "\r\n"


def sg_event(
    event: str,
    n: int,
    *,
    delivery_id: int | str | None = None,
    campaign: str | None = "kap-intro",
    step: int | None = 1,
    email: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One SendGrid event with our custom args as top-level keys."""
    data: dict[str, Any] = {
        "email": email or f"person{n}@example.com",
        "timestamp": 1_764_590_400 + n,
        "event": event,
        "sg_event_id": f"evt-{event}-{n}",
        "sg_message_id": f"msg{n}.filter0001.0",
        "smtp-id": f"<msg{n}@ismtpd-1>",
    }
    if delivery_id is not None:
        data["delivery_id"] = str(delivery_id)
    if campaign is not None:
        data["campaign"] = campaign
    if step is not None:
        data["step"] = str(step)
    data.update(fields)
    return data
