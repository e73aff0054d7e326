"""SmtpTransport against a real SMTP server (aiosmtpd, STARTTLS with a test certificate
the client verifies, AUTH after TLS): pooled connections, VERP envelope senders, and what
4xx, 5xx and a connection cut after the data mean."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Sender
from nurture.providers.smtp.transport import SmtpTransport, verp_address
from tests.support.factories import SECRET
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer

OPEN: list[SmtpTransport] = []


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server
        while OPEN:
            OPEN.pop().close()


def envelope(i: int) -> Envelope:
    return Envelope(
        delivery_id=str(5000 + i),
        to_email=f"reader{i}@example.com",
        to_name=f"Reader {i}",
        subject="Week 1",
        headers={
            "List-Unsubscribe": f"<https://example.org/u/tok{i}>, <mailto:unsub@example.org?subject=tok{i}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        substitutions={"-first_name-": f"Name{i}"},
        custom_args={"delivery_id": str(5000 + i)},
        stream="kap-intro",
        step=1,
    )


def batch(n: int, start: int = 0) -> Batch:
    return Batch(
        sender=Sender("clinic@example.org", "The Clinic", reply_to="hello@example.org"),
        text="Hello -first_name-",
        html="<p>Hello -first_name-</p>",
        envelopes=[envelope(i) for i in range(start, start + n)],
    )


def transport(relay: SmtpServer, **kw: Any) -> SmtpTransport:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": relay.port,
        "security": "starttls",
        "username": USERNAME,
        "password": PASSWORD,
        "bounce_domain": "bounces.example.org",
        "secret": SECRET,
        "pool_size": 4,
        "timeout": 5.0,
        "backoff_base": 0.01,
        "tls_context": relay.client_context(),
    }
    values.update(kw)
    made = SmtpTransport(**values)
    OPEN.append(made)  # closed after the test: its pooled connections stay open until then
    return made


def test_a_thousand_emails_once_each_over_a_few_reused_connections(relay: SmtpServer) -> None:
    sender = transport(relay)
    outcomes = []
    for start in range(0, 1000, 250):
        outcomes += sender.send(batch(250, start=start))
    sender.close()
    assert Counter(o.status for o in outcomes) == Counter({"sent": 1000})
    ids = {o.delivery_id: o.provider_message_id for o in outcomes}
    messages = relay.messages()
    assert Counter(m.rcpt_to for m in messages) == Counter({f"reader{i}@example.com": 1 for i in range(1000)})
    assert relay.logins <= 4, "connections are kept and reused, not opened per message"
    for received in messages[:50]:
        i = int(received.rcpt_to.removeprefix("reader").split("@")[0])
        delivery_id = str(5000 + i)
        assert received.mail_from == verp_address(delivery_id, "bounces.example.org", SECRET)
        message = received.message
        assert f".{delivery_id}." in message["Message-ID"]
        assert ids[delivery_id] == message["Message-ID"].strip().strip("<>"), (
            "the Message-ID is the recorded id"
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"tok{i}" in str(message["List-Unsubscribe"])
        assert message["Reply-To"] == "hello@example.org"
        assert message.get_body(("plain",)).get_content().strip() == f"Hello Name{i}"  # type: ignore[union-attr]


def test_4xx_is_retried_and_then_goes_once(relay: SmtpServer) -> None:
    relay.defer_rcpt["reader1@example.com"] = 2
    relay.defer_data["reader2@example.com"] = 1
    outcomes = {o.delivery_id: o for o in transport(relay).send(batch(4))}
    assert {o.status for o in outcomes.values()} == {"sent"}
    assert Counter(m.rcpt_to for m in relay.messages())["reader1@example.com"] == 1
    assert Counter(m.rcpt_to for m in relay.messages())["reader2@example.com"] == 1


def test_4xx_to_the_end_fails_without_sending(relay: SmtpServer) -> None:
    relay.defer_rcpt["reader0@example.com"] = 100
    [outcome] = transport(relay, max_retries=2).send(batch(1))
    assert outcome.status == "failed"
    assert "451" in (outcome.error or "")
    assert relay.messages() == []


def test_5xx_fails_that_recipient_only(relay: SmtpServer) -> None:
    relay.refuse = {"reader1@example.com"}
    outcomes = {o.delivery_id: o for o in transport(relay).send(batch(3))}
    assert outcomes["5001"].status == "failed" and "550" in (outcomes["5001"].error or "")
    assert "reader1" not in (outcomes["5001"].error or "")
    assert outcomes["5000"].status == outcomes["5002"].status == "sent"


def test_a_connection_cut_after_the_data_is_unknown_and_not_retried(relay: SmtpServer) -> None:
    relay.cut_after_data = {"reader1@example.com"}
    outcomes = {o.delivery_id: o for o in transport(relay).send(batch(3))}
    assert outcomes["5001"].status == "unknown"
    assert outcomes["5000"].status == outcomes["5002"].status == "sent"
    assert Counter(m.rcpt_to for m in relay.messages())["reader1@example.com"] == 1, "sent once, not again"


def test_an_unverifiable_certificate_stops_the_pass(relay: SmtpServer) -> None:
    with pytest.raises(FatalTransportError, match="certificate"):
        transport(relay, tls_context=ssl.create_default_context()).send(batch(1))
    assert relay.messages() == []


def test_a_wrong_password_stops_the_pass(relay: SmtpServer) -> None:
    with pytest.raises(FatalTransportError, match="login"):
        transport(relay, password="wrong").send(batch(1))
    assert relay.messages() == []


def test_plain_smtp_is_refused_for_a_remote_host(tmp_path: Path) -> None:
    from nurture.config.sections import Smtp

    with pytest.raises(ValueError, match="only to this machine"):
        Smtp(host="smtp.example.net", port=25, security="none")
    assert Smtp(host="127.0.0.1", port=25, security="none").security == "none"


def test_a_transport_without_its_settings_names_where_it_was_chosen(tmp_path: Path) -> None:
    from nurture.errors import ConfigError
    from tests.support.factories import make_config

    with pytest.raises(
        ConfigError, match=r"config.yaml, line \d+: delivery.transport is 'smtp' but smtp.host"
    ):
        make_config(tmp_path, **{"delivery.transport": "smtp"})
    with pytest.raises(ConfigError, match="ses.region is not set") as caught:
        make_config(tmp_path, **{"delivery.transport": "ses"})
    assert "ses.configuration_set is not set" in str(caught.value)
