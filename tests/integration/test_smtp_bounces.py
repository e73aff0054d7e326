"""The SMTP transport in a real sending pass (aiosmtpd with STARTTLS), and its bounce mail:
RFC 3464 DSNs in a Maildir suppress exactly the people they name, settle an email whose
outcome was unknown, and applying them twice changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.event_feeds import fetch_bounces
from nurture.providers.smtp.transport import verp_address
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.dsn import auto_reply, dsn, maildir
from tests.support.factories import SECRET, active_subscribers, make_app
from tests.support.processes import STEP_TIMES
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer

BOUNCE_DOMAIN = "bounces.example.org"


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    (tmp_path / "tls").mkdir()
    with SmtpServer(tmp_path / "tls") as server:
        # The transport trusts the system's CAs; here the test certificate is that store.
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_file))
        yield server


@pytest.fixture
def smtp_app(tmp_path: Path, relay: SmtpServer) -> Iterator[App]:
    app = make_app(
        tmp_path,
        environ={"NURTURE_SMTP_PASSWORD": PASSWORD},
        **{
            "delivery.transport": "smtp",
            "delivery.batch_size": 50,
            "smtp.host": "127.0.0.1",
            "smtp.port": relay.port,
            "smtp.username": USERNAME,
            "smtp.bounce_domain": BOUNCE_DOMAIN,
            "smtp.bounces_maildir": str(tmp_path / "bounces"),
        },
    )
    yield app
    app.transport.close()  # its kept connections, before the relay stops


def deliveries(app: App) -> dict[str, m.Delivery]:
    """Each delivery of step 1, by its subscriber's address."""
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Subscriber.email, m.Delivery).join(
                m.Delivery, m.Delivery.subscriber_id == m.Subscriber.id
            )
        ).all()
        session.expunge_all()
    return {email: delivery for email, delivery in rows if delivery.step == 1}


def status_of(app: App, email: str) -> str:
    with transaction(app.engine) as session:
        return str(session.scalar(select(m.Subscriber.status).where(m.Subscriber.email == email)))


def test_dsns_in_a_maildir_suppress_the_right_people_once(
    smtp_app: App, relay: SmtpServer, tmp_path: Path
) -> None:
    active_subscribers(smtp_app, 30, STEP_TIMES[0] - timedelta(minutes=5))
    relay.cut_after_data = {"person5@example.com"}
    summary = send_due(smtp_app, STEP_TIMES[0])
    assert summary.sent == 29
    sent = deliveries(smtp_app)
    assert sent["person5@example.com"].status == m.DeliveryStatus.CLAIMED, "cut after the data: unknown"
    assert Counter(r.rcpt_to for r in relay.messages()).most_common(1)[0][1] == 1

    def bounce_to(email: str) -> str:
        # The envelope sender the transport used: the email's message key, never its row id.
        key = sent[email].message_key
        assert key is not None
        assert any(r.mail_from == verp_address(key, BOUNCE_DOMAIN, SECRET) for r in relay.messages())
        return verp_address(key, BOUNCE_DOMAIN, SECRET)

    box = maildir(tmp_path / "bounces")
    box.add(dsn(bounce_to("person1@example.com"), "person1@example.com", "5.1.1"))
    box.add(
        dsn(
            bounce_to("person2@example.com"),
            "person2@example.com",
            "4.2.2",
            diagnostic="smtp; 452 mailbox full",
        )
    )
    box.add(dsn(bounce_to("person3@example.com"), "person3@example.com", "4.4.7", action="delayed"))
    box.add(dsn(bounce_to("person5@example.com"), "person5@example.com", "5.1.1"))  # the unknown one
    # Not ours: a made-up tag, and a bounce address without one.
    forged = bounce_to("person4@example.com").replace("-", "-0", 1)[:-1]
    box.add(dsn(forged, "person4@example.com", "5.1.1"))
    box.add(dsn(f"bounces+{sent['person6@example.com'].id}@{BOUNCE_DOMAIN}", "person6@example.com", "5.1.1"))
    box.add(auto_reply(bounce_to("person7@example.com")))

    report = fetch_bounces(smtp_app, lambda: STEP_TIMES[0] + timedelta(hours=1))
    assert (report.received, report.stored, report.malformed) == (7, 4, 3)
    assert report.suppressed == 2
    assert status_of(smtp_app, "person1@example.com") == "bounced"
    assert status_of(smtp_app, "person5@example.com") == "bounced"
    for email in ("person2@example.com", "person3@example.com", "person4@example.com", "person6@example.com"):
        assert status_of(smtp_app, email) == "active", email
    with transaction(smtp_app.engine) as session:
        kinds = Counter(
            session.scalars(select(m.ProviderEvent.kind).where(m.ProviderEvent.provider == "smtp"))
        )
    assert kinds == Counter({"bounced_hard": 2, "bounced_soft": 1, "deferred": 1})
    settled = deliveries(smtp_app)["person5@example.com"]
    assert settled.status == m.DeliveryStatus.SENT, (
        "the bounce proves the relay took it: settled, never resent"
    )

    # Again: everything is marked seen. And the same mail once more (copied back): stored once.
    assert fetch_bounces(smtp_app, lambda: STEP_TIMES[0] + timedelta(hours=2)).received == 0
    box.add(
        dsn(
            bounce_to("person2@example.com"),
            "person2@example.com",
            "4.2.2",
            diagnostic="smtp; 452 mailbox full",
        )
    )
    for key in list(box.keys()):
        message = box.get_message(key)
        message.remove_flag("S")
        box[key] = message
    again = fetch_bounces(smtp_app, lambda: STEP_TIMES[0] + timedelta(hours=3))
    # Read again: the seven known ones store nothing; the new notice (its own Message-ID) is one more event.
    assert (again.received, again.stored, again.suppressed) == (8, 1, 0)

    # The next step reaches everyone but the hard bounces.
    before = len(relay.messages())
    send_due(smtp_app, STEP_TIMES[1])
    step_two = {r.rcpt_to for r in relay.messages()[before:]}
    assert "person1@example.com" not in step_two and "person5@example.com" not in step_two
    assert "person2@example.com" in step_two and len(step_two) == 28
