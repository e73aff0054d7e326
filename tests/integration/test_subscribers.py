"""Subscribers on SQLite: double opt-in, tokens, leaving and coming back, consent records,
erasure, export, and no addresses in the logs."""

from __future__ import annotations

import email
import json
import logging
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.audience.people import export, forget, tag
from nurture.audience.signup import confirm, subscribe, unsubscribe, unsubscribe_email
from nurture.cli.main import cli
from nurture.errors import InputError, NotFound, TokenError
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.tokens import address_hash, make_confirm_token, make_unsubscribe_token
from tests.support.factories import SECRET, active_subscribers, at, consent_events, enrollments_of, make_app

NOW = at("2026-12-01 18:00")  # Tuesday: 10:00 in Los Angeles (the default zone), 13:00 in New York
WORDING_VERSION = "2026-11-v1"
STEP_SUBJECTS = [
    "What is ketamine-assisted psychotherapy?",
    "What happens in the brain during KAP",
    "Is ketamine-assisted psychotherapy safe?",
    "What a KAP dosing session is typically like",
    "What a first consultation about KAP looks like",
]
NOT_VALID = "this link is not valid: it may have been cut short or changed"


# ---------------------------------------------------------------- helpers


CONFIRM_TAIL = re.compile(r"^\d{8}T\d{6}Z-(confirm-\d+-\d+)-[0-9a-f]{8}\.eml$")


def outbox(app: App) -> dict[str, EmailMessage]:
    """Messages by file name; confirmations without their time and random tail (confirm-ID-NONCE.eml)."""
    folder = app.config.outbox_dir
    if not folder.exists():
        return {}
    return {
        CONFIRM_TAIL.sub(r"\1.eml", path.name): email.message_from_bytes(
            path.read_bytes(), policy=default_policy
        )  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    }


def recipients(app: App) -> list[tuple[str, str]]:
    """(To address, Subject) of every message in the outbox, in file-name order."""
    return [(msg["To"].addresses[0].addr_spec, str(msg["Subject"])) for msg in outbox(app).values()]


def token_in(message: EmailMessage) -> str:
    text_part = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    tokens = re.findall(r"/confirm/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", text_part)
    assert len(set(tokens)) == 1, text_part
    assert f"/confirm/{tokens[0]}" in html_part
    return tokens[0]


def confirmation_token(app: App, subscriber_id: int, nonce: int) -> str:
    return token_in(outbox(app)[f"confirm-{subscriber_id}-{nonce}.eml"])


def get(app: App, subscriber_id: int) -> m.Subscriber:
    with transaction(app.engine) as session:
        subscriber = session.get(m.Subscriber, subscriber_id)
        assert subscriber is not None
        return subscriber


def deliveries(app: App, subscriber_id: int | None = None) -> list[m.Delivery]:
    with transaction(app.engine) as session:
        query = select(m.Delivery).order_by(m.Delivery.id)
        if subscriber_id is not None:
            query = query.where(m.Delivery.subscriber_id == subscriber_id)
        return list(session.scalars(query))


def dump(app: App) -> dict[str, list[tuple[object, ...]]]:
    with transaction(app.engine) as session:
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table)).all()), key=repr)
            for table in m.Base.metadata.sorted_tables
        }


def rows_of(app: App, subscriber_id: int) -> dict[str, list[tuple[object, ...]]]:
    """One person's rows in every table that refers to them."""
    with transaction(app.engine) as session:
        found = {
            "subscribers": [
                tuple(
                    session.execute(
                        select(m.Subscriber.__table__).where(m.Subscriber.id == subscriber_id)
                    ).one()
                )
            ]
        }
        for table in m.Base.metadata.sorted_tables:
            if "subscriber_id" in table.c:
                found[table.name] = [
                    tuple(row)
                    for row in session.execute(select(table).where(table.c.subscriber_id == subscriber_id))
                ]
        return found


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text(
        "email,first_name,timezone,consented_at,consent_source\n" + "".join(f"{row}\n" for row in rows),
        encoding="utf-8",
    )
    return path


def daily(app: App, start: datetime, days: int) -> None:
    """A sending pass at the same hour on each of the next days (inside the window)."""
    for day in range(days):
        send_due(app, start + timedelta(days=day))


# ---------------------------------------------------------------- double opt-in


def test_subscribe_sends_one_confirmation_and_records_the_opt_in(app: App):
    result = subscribe(
        app,
        "  Sam@Example.COM ",
        NOW,
        first_name=" Sam ",
        timezone="America/Chicago",
        source="web form",
        ip="203.0.113.9",
        user_agent="Mozilla/5.0 (test)",
    )
    assert result.status == "confirmation_sent"

    assert list(outbox(app)) == [f"confirm-{result.subscriber_id}-1.eml"]
    message = outbox(app)[f"confirm-{result.subscriber_id}-1.eml"]
    assert str(message["To"]) == "Sam <Sam@example.com>"
    assert str(message["Subject"]) == "Please confirm your subscription to Riverbend Integrative Therapy"
    assert message["List-Unsubscribe"] is None  # transactional, not marketing
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert "Hi Sam," in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token_in(message)

    person = get(app, result.subscriber_id)
    assert (person.email, person.email_key) == ("Sam@example.com", "sam@example.com")
    assert (person.first_name, person.timezone, person.source) == ("Sam", "America/Chicago", "web form")
    assert (person.status, person.confirmed_at, person.confirm_nonce) == (m.SubscriberStatus.PENDING, None, 1)
    [event] = consent_events(app, result.subscriber_id)
    assert (event.kind, event.occurred_at, event.recorded_at) == (m.ConsentKind.OPT_IN, NOW, NOW)
    assert (event.source, event.ip, event.user_agent) == ("web form", "203.0.113.9", "Mozilla/5.0 (test)")
    assert event.wording_version == WORDING_VERSION
    with transaction(app.engine) as session:
        wording = session.get(m.ConsentWording, WORDING_VERSION)
        assert wording is not None and wording.wording == app.config.consent.wording
    assert enrollments_of(app, result.subscriber_id) == []
    assert deliveries(app) == []


def test_pending_subscriber_gets_nothing_but_the_confirmation(app: App):
    [control] = active_subscribers(app, 1, NOW, prefix="control")
    pending = subscribe(app, "pat@example.com", NOW, first_name="Pat").subscriber_id

    summary = send_due(app, NOW)  # inside the window for both of them
    assert summary.sent == 1  # the window is open: the confirmed person got the first email
    daily(app, NOW + timedelta(days=1), 20)

    assert [d.step for d in deliveries(app, control)] == [1, 2, 3, 4, 5]
    assert deliveries(app, pending) == []
    to_pat = [subject for address, subject in recipients(app) if address == "pat@example.com"]
    assert to_pat == ["Please confirm your subscription to Riverbend Integrative Therapy"]
    assert get(app, pending).status == m.SubscriberStatus.PENDING


def test_confirm_activates_records_and_enrolls(app: App):
    sam = subscribe(app, "sam@example.com", NOW, source="web form").subscriber_id
    token = confirmation_token(app, sam, 1)

    later = NOW + timedelta(hours=2)
    result = confirm(app, token, later, ip="198.51.100.7", user_agent="Phone browser", source="web")
    assert (result.status, result.subscriber_id, result.enrolled) == ("confirmed", sam, 1)

    person = get(app, sam)
    assert (person.status, person.confirmed_at, person.status_changed_at) == (
        m.SubscriberStatus.ACTIVE,
        later,
        later,
    )
    opt_in, confirmation = consent_events(app, sam)
    assert (opt_in.kind, opt_in.occurred_at, opt_in.wording_version) == (
        m.ConsentKind.OPT_IN,
        NOW,
        WORDING_VERSION,
    )
    assert (confirmation.kind, confirmation.occurred_at, confirmation.wording_version) == (
        m.ConsentKind.CONFIRM,
        later,
        WORDING_VERSION,
    )
    assert (confirmation.source, confirmation.ip, confirmation.user_agent) == (
        "web",
        "198.51.100.7",
        "Phone browser",
    )
    [enrollment] = enrollments_of(app, sam)
    assert (enrollment.campaign, enrollment.status, enrollment.next_step, enrollment.next_due_at) == (
        "kap-intro",
        m.EnrollmentStatus.ACTIVE,
        1,
        later,
    )

    assert send_due(app, later).sent == 1
    assert sorted(recipients(app)) == [
        ("sam@example.com", "Please confirm your subscription to Riverbend Integrative Therapy"),
        ("sam@example.com", STEP_SUBJECTS[0]),
    ]

    again = confirm(app, token, later + timedelta(minutes=5))
    assert (again.status, again.enrolled) == ("already_active", 0)
    assert len(consent_events(app, sam)) == 2


def test_expired_token_is_refused(app: App):
    sam = subscribe(app, "sam@example.com", NOW).subscriber_id
    token = confirmation_token(app, sam, 1)

    with pytest.raises(TokenError) as caught:
        confirm(app, token, NOW + timedelta(days=8))
    assert str(caught.value) == "this confirmation link has expired (links last 7 days): please sign up again"
    assert get(app, sam).status == m.SubscriberStatus.PENDING
    assert [e.kind for e in consent_events(app, sam)] == [m.ConsentKind.OPT_IN]
    assert enrollments_of(app, sam) == []

    # Just inside the 7 days it still works.
    assert confirm(app, token, NOW + timedelta(days=6, hours=23)).status == "confirmed"


def test_tampered_tokens_are_refused(app: App):
    sam = subscribe(app, "sam@example.com", NOW).subscriber_id
    other = subscribe(app, "other@example.com", NOW).subscriber_id
    token = confirmation_token(app, sam, 1)
    body, mac = token.split(".")
    flipped = mac[:5] + ("A" if mac[5] != "A" else "B") + mac[6:]
    other_body = confirmation_token(app, other, 1).split(".")[0]
    forgeries = {
        "mac changed": f"{body}.{flipped}",
        "payload of another subscriber": f"{other_body}.{mac}",
        "cut short": token[:-6],
        "no signature": body,
        "garbage": "not-a-token",
        "signed with another key": make_confirm_token("some-other-secret-key-123", sam, 1, NOW),
        "an unsubscribe token": make_unsubscribe_token(SECRET, sam, "kap-intro"),
    }
    for what, forged in forgeries.items():
        assert forged != token
        with pytest.raises(TokenError) as caught:
            confirm(app, forged, NOW + timedelta(minutes=1))
        assert str(caught.value) == NOT_VALID, what
    assert get(app, sam).status == m.SubscriberStatus.PENDING
    assert get(app, other).status == m.SubscriberStatus.PENDING
    assert [e.kind for e in consent_events(app, sam)] == [m.ConsentKind.OPT_IN]
    # The real one still works.
    assert confirm(app, token, NOW + timedelta(minutes=2)).status == "confirmed"


def test_a_second_subscribe_replaces_the_older_link(app: App):
    sam = subscribe(app, "sam@example.com", NOW).subscriber_id
    again = subscribe(app, "SAM@example.com", NOW + timedelta(hours=1), first_name="Sam")
    assert (again.status, again.subscriber_id) == ("confirmation_sent", sam)
    assert list(outbox(app)) == [f"confirm-{sam}-1.eml", f"confirm-{sam}-2.eml"]
    old, new = confirmation_token(app, sam, 1), confirmation_token(app, sam, 2)
    assert old != new

    with pytest.raises(TokenError, match="replaced by a newer one"):
        confirm(app, old, NOW + timedelta(hours=2))
    assert get(app, sam).status == m.SubscriberStatus.PENDING
    assert confirm(app, new, NOW + timedelta(hours=2)).status == "confirmed"
    assert [e.kind for e in consent_events(app, sam)] == [
        m.ConsentKind.OPT_IN,
        m.ConsentKind.OPT_IN,
        m.ConsentKind.CONFIRM,
    ]
    assert get(app, sam).first_name == "Sam"


def test_subscribing_an_active_address_leaves_it_alone(app: App):
    sam = subscribe(app, "sam@example.com", NOW, first_name="Sam").subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    before, files = dump(app), list(outbox(app))

    result = subscribe(
        app, "Sam@Example.com", NOW + timedelta(days=1), first_name="Samantha", timezone="Asia/Tokyo"
    )

    assert (result.status, result.subscriber_id) == ("already_active", sam)
    assert dump(app) == before
    assert list(outbox(app)) == files


def test_resubscribe_after_unsubscribe_confirms_again_and_resumes(app: App):
    sam = subscribe(app, "sam@example.com", NOW).subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    assert send_due(app, NOW).sent == 1  # step 1

    assert unsubscribe_email(app, "sam@example.com", NOW + timedelta(days=1), reason="moving away")
    assert get(app, sam).status == m.SubscriberStatus.UNSUBSCRIBED
    assert [e.status for e in enrollments_of(app, sam)] == [m.EnrollmentStatus.STOPPED]
    daily(app, NOW + timedelta(days=1), 5)
    assert [d.step for d in deliveries(app, sam)] == [1]

    comeback = NOW + timedelta(days=6)
    result = subscribe(app, "sam@example.com", comeback)
    assert result.status == "confirmation_sent"
    person = get(app, sam)
    assert (person.status, person.confirm_nonce) == (m.SubscriberStatus.PENDING, 2)
    assert f"confirm-{sam}-2.eml" in outbox(app)
    daily(app, comeback, 3)  # pending again: nothing but the confirmation
    assert [d.step for d in deliveries(app, sam)] == [1]

    confirmed_at = comeback + timedelta(days=3)
    assert confirm(app, confirmation_token(app, sam, 2), confirmed_at).enrolled == 1
    daily(app, confirmed_at, 25)

    sent = deliveries(app, sam)
    assert [(d.step, d.status) for d in sent] == [
        (1, m.DeliveryStatus.SENT),
        (2, m.DeliveryStatus.SENT),
        (3, m.DeliveryStatus.SENT),
        (4, m.DeliveryStatus.SENT),
        (5, m.DeliveryStatus.SENT),
    ]
    assert sent[1].claimed_at == confirmed_at  # resumed at step 2 right away, step 1 not resent
    to_sam = [subject for address, subject in recipients(app) if address == "sam@example.com"]
    assert sorted(to_sam) == sorted(
        ["Please confirm your subscription to Riverbend Integrative Therapy"] * 2 + STEP_SUBJECTS
    )
    assert [(e.kind, e.detail) for e in consent_events(app, sam)] == [
        (m.ConsentKind.OPT_IN, None),
        (m.ConsentKind.CONFIRM, None),
        (m.ConsentKind.UNSUBSCRIBE, "moving away"),
        (m.ConsentKind.OPT_IN, None),
        (m.ConsentKind.CONFIRM, None),
    ]
    assert [e.status for e in enrollments_of(app, sam)] == [m.EnrollmentStatus.COMPLETED]


def test_unsubscribe_is_idempotent_and_recorded(app: App):
    sam = subscribe(app, "sam@example.com", NOW).subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)

    assert (
        unsubscribe_email(app, "Sam@Example.com", NOW + timedelta(hours=1), reason="asked by phone") is True
    )
    assert unsubscribe_email(app, "sam@example.com", NOW + timedelta(hours=2), reason="again") is False
    assert unsubscribe(app, sam, NOW + timedelta(hours=3), source="link", stream="kap-intro") is False

    person = get(app, sam)
    assert (person.status, person.status_changed_at) == (
        m.SubscriberStatus.UNSUBSCRIBED,
        NOW + timedelta(hours=1),
    )
    leaving = [e for e in consent_events(app, sam) if e.kind == m.ConsentKind.UNSUBSCRIBE]
    assert [(e.occurred_at, e.source, e.detail) for e in leaving] == [
        (NOW + timedelta(hours=1), "cli", "asked by phone")
    ]
    assert [e.status for e in enrollments_of(app, sam)] == [m.EnrollmentStatus.STOPPED]
    with pytest.raises(NotFound, match="no subscriber with that address"):
        unsubscribe_email(app, "nobody@example.com", NOW)


def test_unsubscribe_from_a_link_notes_the_stream(app: App):
    [kim] = active_subscribers(app, 1, NOW, prefix="kim")
    assert unsubscribe(
        app, kim, NOW, source="link", stream="kap-intro", ip="192.0.2.1", user_agent="Mail app"
    )
    [event] = [e for e in consent_events(app, kim) if e.kind == m.ConsentKind.UNSUBSCRIBE]
    assert (event.source, event.detail, event.ip, event.user_agent) == (
        "link",
        "from kap-intro",
        "192.0.2.1",
        "Mail app",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"email": "not an address"}, "is not a valid email address"),
        ({"email": ""}, "email address is empty"),
        (
            {"email": "ok@example.com", "first_name": "Eve\r\nBcc: x@example.com"},
            "first name contains a line break",
        ),
        ({"email": "ok@example.com", "timezone": "Moon/Base"}, "'Moon/Base' is not an IANA time zone"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(app: App, kwargs: dict[str, str], message: str):
    before = dump(app)
    with pytest.raises(InputError, match=message):
        subscribe(app, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert dump(app) == before
    assert outbox(app) == {}


def test_changed_wording_needs_a_new_version(tmp_path: Path):
    first = make_app(tmp_path)
    subscribe(first, "a@example.com", NOW)
    first.close()
    changed = make_app(tmp_path, **{"consent.wording": "Different words shown to people from now on."})
    try:
        with pytest.raises(
            InputError, match="consent.wording changed but consent.version is still '2026-11-v1'"
        ):
            subscribe(changed, "b@example.com", NOW)
    finally:
        changed.close()
    bumped = make_app(
        tmp_path,
        **{"consent.wording": "Different words shown to people from now on.", "consent.version": "v2"},
    )
    try:
        result = subscribe(bumped, "b@example.com", NOW)
        assert [e.wording_version for e in consent_events(bumped, result.subscriber_id)] == ["v2"]
        assert [e.wording_version for e in consent_events(bumped, 1)] == [WORDING_VERSION]
    finally:
        bumped.close()


# ---------------------------------------------------------------- append-only consent records


def test_consent_events_refuse_update_on_sqlite(app: App):
    sam = subscribe(app, "sam@example.com", NOW, source="web form").subscriber_id
    with (
        pytest.raises(DBAPIError, match="consent_events is append-only"),
        app.engine.begin() as connection,  # type: ignore[union-attr]
    ):
        connection.execute(text("UPDATE consent_events SET source = 'forged'"))
    with pytest.raises(DBAPIError, match="consent_events is append-only"), transaction(app.engine) as session:
        session.execute(update(m.ConsentEvent).values(occurred_at=NOW - timedelta(days=365)))
    [event] = consent_events(app, sam)
    assert (event.source, event.occurred_at) == ("web form", NOW)


# ---------------------------------------------------------------- forget, and staying forgotten


def test_forget_then_reimport_is_refused_but_a_fresh_opt_in_works(app: App, tmp_path: Path):
    sam = subscribe(app, "sam@example.com", NOW, first_name="Sam").subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    tag(app, "sam@example.com", "webinar", NOW)
    [kim] = active_subscribers(app, 1, NOW, prefix="kim")
    send_due(app, NOW)
    assert len(deliveries(app, sam)) == 1
    kim_before = rows_of(app, kim)

    forget(app, "SAM@example.com", NOW + timedelta(days=1))

    with transaction(app.engine) as session:
        assert session.get(m.Subscriber, sam) is None
        for model in (m.ConsentEvent, m.Enrollment, m.SubscriberTag):
            assert (
                session.scalar(select(func.count()).select_from(model).where(model.subscriber_id == sam)) == 0
            )
        [suppressed] = session.scalars(select(m.Suppression)).all()
    assert suppressed.address_hash == address_hash(SECRET, "sam@example.com")
    assert (suppressed.reason, suppressed.created_at) == ("erased", NOW + timedelta(days=1))
    # The delivery stays for anonymous counts, without the person.
    anonymous = [d for d in deliveries(app) if d.subscriber_id is None]
    assert [(d.stream, d.step, d.status) for d in anonymous] == [("kap-intro", 1, m.DeliveryStatus.SENT)]
    stored = repr(dump(app)).casefold()
    assert "sam@example.com" not in stored and "'sam'" not in stored
    assert rows_of(app, kim) == kim_before
    assert [
        len(kim_before[name]) for name in ("subscribers", "consent_events", "enrollments", "deliveries")
    ] == [1, 1, 1, 1]
    with pytest.raises(NotFound):
        export(app, "sam@example.com")
    with pytest.raises(NotFound):
        forget(app, "sam@example.com", NOW + timedelta(days=1))

    path = write_csv(
        tmp_path / "old-list.csv",
        "Sam@Example.com,Sam,,2025-01-01,old list",
        "new@example.com,New,,2025-01-01,old list",
    )
    report = import_csv(app, path, NOW + timedelta(days=2))
    assert (report.rows, report.created, report.skipped_erased) == (2, 1, 1)
    with transaction(app.engine) as session:
        keys = set(session.scalars(select(m.Subscriber.email_key)))
    assert "sam@example.com" not in keys and "new@example.com" in keys

    # Asking again, in person, through double opt-in, works.
    result = subscribe(app, "sam@example.com", NOW + timedelta(days=3))
    assert result.status == "confirmation_sent"
    assert get(app, result.subscriber_id).status == m.SubscriberStatus.PENDING
    assert (
        confirm(app, confirmation_token(app, result.subscriber_id, 1), NOW + timedelta(days=3)).status
        == "confirmed"
    )
    assert get(app, result.subscriber_id).status == m.SubscriberStatus.ACTIVE
    with transaction(app.engine) as session:
        assert session.scalar(select(func.count()).select_from(m.Suppression)) == 0


# ---------------------------------------------------------------- export


def test_export_holds_everything_about_one_person_and_nobody_else(app: App):
    sam = subscribe(
        app,
        "sam@example.com",
        NOW,
        first_name="Sam",
        timezone="America/Chicago",
        source="web form",
        ip="203.0.113.9",
        user_agent="UA/1",
    ).subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW + timedelta(minutes=10))
    tag(app, "sam@example.com", "webinar-2026", NOW)
    kim = subscribe(
        app, "kim@example.com", NOW, first_name="Kimberly", timezone="America/Denver"
    ).subscriber_id
    confirm(app, confirmation_token(app, kim, 1), NOW)
    tag(app, "kim@example.com", "kims-own-tag", NOW)
    send_due(app, NOW + timedelta(minutes=10))
    assert len(deliveries(app, kim)) == 1 and len(deliveries(app, sam)) == 1

    data = export(app, "SAM@example.com")

    assert set(data) == {
        "subscriber",
        "tags",
        "consent_events",
        "enrollments",
        "deliveries",
        "provider_events",
    }
    assert data["subscriber"] == {
        "email": "sam@example.com",
        "first_name": "Sam",
        "timezone": "America/Chicago",
        "status": m.SubscriberStatus.ACTIVE,
        "source": "web form",
        "created_at": NOW.isoformat(),
        "confirmed_at": (NOW + timedelta(minutes=10)).isoformat(),
        "status_changed_at": (NOW + timedelta(minutes=10)).isoformat(),
        "preferences": {"series": True, "newsletter": True, "frequency": "daily", "paused_until": None},
        "preferences_seen_at": None,
    }
    assert data["tags"] == ["webinar-2026"]
    opt_in, confirmation = data["consent_events"]
    assert opt_in == {
        "kind": m.ConsentKind.OPT_IN,
        "occurred_at": NOW.isoformat(),
        "recorded_at": NOW.isoformat(),
        "source": "web form",
        "ip": "203.0.113.9",
        "user_agent": "UA/1",
        "wording_version": WORDING_VERSION,
        "wording": app.config.consent.wording,
        "detail": None,
    }
    assert (confirmation["kind"], confirmation["wording"]) == (
        m.ConsentKind.CONFIRM,
        app.config.consent.wording,
    )
    [enrollment] = data["enrollments"]
    assert (enrollment["campaign"], enrollment["status"], enrollment["next_step"]) == (
        "kap-intro",
        m.EnrollmentStatus.ACTIVE,
        2,
    )
    [delivery] = data["deliveries"]
    assert (delivery["stream"], delivery["step"], delivery["status"]) == (
        "kap-intro",
        1,
        m.DeliveryStatus.SENT,
    )
    assert delivery["provider_message_id"]
    assert data["provider_events"] == []

    dumped = json.dumps(data)  # plain JSON, no custom encoder needed
    for other in ("kim@example.com", "Kimberly", "America/Denver", "kims-own-tag"):
        assert other not in dumped


def test_export_and_forget_from_the_command_line(app: App, monkeypatch: pytest.MonkeyPatch):
    sam = subscribe(app, "sam@example.com", NOW, first_name="Sam").subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    runner = CliRunner()
    config = str(app.config.path)

    result = runner.invoke(
        cli, ["--config", config, "subscribers", "export", "sam@example.com"], prog_name="nurture"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == export(app, "sam@example.com")

    result = runner.invoke(
        cli,
        ["--config", config, "subscribers", "forget", "sam@example.com"],
        input="n\n",
        prog_name="nurture",
    )
    assert result.exit_code == 1
    assert "error: not erased" in result.stderr
    assert get(app, sam).status == m.SubscriberStatus.ACTIVE

    result = runner.invoke(
        cli, ["--config", config, "subscribers", "forget", "sam@example.com", "--yes"], prog_name="nurture"
    )
    assert result.exit_code == 0, result.output
    assert "erased" in result.stdout
    result = runner.invoke(
        cli, ["--config", config, "subscribers", "export", "sam@example.com"], prog_name="nurture"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no subscriber with that address")


def test_subscribers_list_filters_and_prints_each_person_once(app: App, monkeypatch: pytest.MonkeyPatch):
    sam = subscribe(app, "sam@example.com", NOW, first_name="Sam").subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    subscribe(app, "pat@example.com", NOW)  # pending
    tag(app, "sam@example.com", "workshop", NOW)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    config = str(app.config.path)

    def listing(*options: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--config", config, "subscribers", "list", *options])
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    everyone = listing()
    assert everyone[-1] == "2 subscriber(s)" and len(everyone) == 3
    assert "sam@example.com" in everyone[0] and "pat@example.com" in everyone[1]
    assert everyone[0].split() == [str(sam), "active", "sam@example.com", "-", "Sam"]
    assert listing("--status", "pending")[-1] == "1 subscriber(s)"
    assert "pat@example.com" in listing("--status", "pending")[0]
    assert listing("--tag", "Workshop")[:-1] == everyone[:1]
    assert listing("--limit", "1") == [everyone[0], "1 subscriber(s)"]
    result = CliRunner().invoke(
        cli, ["--config", config, "subscribers", "list", "--status", "active", "--json"]
    )
    rows = json.loads(result.stdout)
    assert [(row["id"], row["email"], row["first_name"], row["status"]) for row in rows] == [
        (sam, "sam@example.com", "Sam", "active")
    ]
    assert set(rows[0]) == {"id", "email", "first_name", "timezone", "status", "created_at"}
    assert rows[0]["created_at"].startswith("2026-12-01 18:00:00")


def test_subscribe_and_confirm_from_the_command_line(app: App, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    runner = CliRunner()
    base = ["--config", str(app.config.path)]

    result = runner.invoke(
        cli, [*base, "subscribe", "sam@example.com", "--first-name", "Sam", "--now", "2026-12-01T18:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "pending: confirmation email sent through the outbox transport\n"
    [name] = outbox(app)
    sam = int(name.split("-")[1])
    token = confirmation_token(app, sam, 1)

    late = runner.invoke(cli, [*base, "confirm", token, "--now", "2026-12-09T18:00:01Z"])
    assert late.exit_code == 1
    assert (
        late.stderr == "error: this confirmation link has expired (links last 7 days): please sign up again\n"
    )
    bad = runner.invoke(cli, [*base, "confirm", token[:-3] + "xyz", "--now", "2026-12-01T19:00:00Z"])
    assert bad.exit_code == 1
    assert bad.stderr == f"error: {NOT_VALID}\n"

    ok = runner.invoke(cli, [*base, "confirm", token, "--now", "2026-12-01T19:00:00Z"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == "confirmed; enrolled in 1 campaign(s)\n"
    again = runner.invoke(cli, [*base, "subscribe", "sam@example.com"])
    assert again.stdout == "already subscribed and confirmed: nothing changed\n"
    assert get(app, sam).confirmed_at == at("2026-12-01 19:00")


# ---------------------------------------------------------------- no addresses in logs


def test_no_address_is_logged(app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("nurture").setLevel(logging.DEBUG)
    addresses = ["Logged.Person@Example.com", "imported.one@example.com", "imported.two@example.com"]

    sam = subscribe(app, addresses[0], NOW, first_name="Secretname").subscriber_id
    confirm(app, confirmation_token(app, sam, 1), NOW)
    path = write_csv(
        tmp_path / "people.csv",
        f"{addresses[1]},One,,2025-01-01,form",
        f"{addresses[2]},Two,,2025-01-01,form",
        "broken@,Three,,2025-01-01,form",
    )
    with pytest.raises(InputError):
        import_csv(app, path, NOW)
    import_csv(app, path, NOW, skip_invalid=True)
    send_due(app, NOW)
    unsubscribe_email(app, addresses[0], NOW)

    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    ).casefold()
    for address in [*addresses, "broken@"]:
        assert address.casefold() not in logged
    assert "secretname" not in logged


def _kinds(app: App, subscriber_id: int) -> list[str]:
    return [event.kind for event in consent_events(app, subscriber_id)]


def test_unsubscribing_after_a_bounce_keeps_the_bounce_and_records_the_withdrawal(tmp_path: Path) -> None:
    from nurture.audience.consent import suppress

    app = make_app(tmp_path)
    [person] = active_subscribers(app, 1, at("2026-12-01 14:00"))
    with transaction(app.engine) as session:
        assert (
            suppress(session, [person], m.ConsentKind.BOUNCE, at("2026-12-02 10:00"), source="sendgrid") == 1
        )
    assert unsubscribe(app, person, at("2026-12-03 10:00"), source="web") is True
    assert unsubscribe(app, person, at("2026-12-03 10:05"), source="web") is False  # idempotent
    with transaction(app.engine) as session:
        assert session.get(m.Subscriber, person).status == m.SubscriberStatus.BOUNCED  # type: ignore[union-attr]
    assert _kinds(app, person) == [m.ConsentKind.IMPORT, m.ConsentKind.BOUNCE, m.ConsentKind.UNSUBSCRIBE]


def test_a_complaint_from_someone_who_already_left_is_recorded_and_wins(tmp_path: Path) -> None:
    from nurture.audience.consent import suppress

    app = make_app(tmp_path)
    [person] = active_subscribers(app, 1, at("2026-12-01 14:00"))
    unsubscribe(app, person, at("2026-12-02 10:00"), source="web")
    with transaction(app.engine) as session:
        assert (
            suppress(session, [person], m.ConsentKind.COMPLAINT, at("2026-12-03 10:00"), source="sendgrid")
            == 1
        )
        assert (
            suppress(session, [person], m.ConsentKind.BOUNCE, at("2026-12-03 10:01"), source="sendgrid") == 0
        )
    with transaction(app.engine) as session:
        assert session.get(m.Subscriber, person).status == m.SubscriberStatus.COMPLAINED  # type: ignore[union-attr]
    assert _kinds(app, person) == [m.ConsentKind.IMPORT, m.ConsentKind.UNSUBSCRIBE, m.ConsentKind.COMPLAINT]
