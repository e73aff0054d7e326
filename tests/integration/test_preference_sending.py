"""The reader's choices in the sending pass: at claim time, and again right before the
transport. A pause sends nothing until its date, then the series goes on from the same
email; newsletter off keeps the series; series off keeps the newsletter; "at most one a
week" holds everything to one email in any seven days. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.audience import preferences
from nurture.newsletters import schedule
from nurture.providers.recording import RecordingTransport
from nurture.sending.sendpass import SendingPass, send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at, make_app
from tests.support.newsletters import WINTER, add_people, newsletter_file

START = at("2026-12-01 14:00")  # Tuesday 09:00 in New York: inside the send window
DAY = timedelta(days=1)


@pytest.fixture
def setup(tmp_path: Path, both_stores: str) -> tuple[App, RecordingTransport]:
    app = make_app(tmp_path, database_url=both_stores)
    transport = RecordingTransport()
    app.use_transport(transport)
    return app, transport


def keys_sent(app: App, subscriber_id: int) -> list[str]:
    with transaction(app.engine) as session:
        return list(
            session.scalars(
                select(m.Delivery.step_key)
                .where(m.Delivery.subscriber_id == subscriber_id, m.Delivery.status == m.DeliveryStatus.SENT)
                .order_by(m.Delivery.id)
            )
        )


def choose(app: App, subscriber_id: int, now: datetime, **changes: object) -> list[str]:
    reader = preferences.look(app, subscriber_id, now)
    assert reader is not None
    fields = {
        "series": reader.choices.series,
        "newsletter": reader.choices.newsletter,
        "frequency": reader.choices.frequency,
        "first_name": reader.choices.first_name,
        "timezone": reader.choices.timezone,
        **changes,
    }
    return preferences.save(app, subscriber_id, preferences.Choices(**fields), now)  # type: ignore[arg-type]


def hourly(app: App, start: datetime, end: datetime) -> None:
    moment = start
    while moment <= end:
        send_due(app, moment)
        moment += timedelta(hours=1)


def test_a_paused_reader_gets_nothing_then_resumes_on_the_date_with_the_same_next_email(
    setup: tuple[App, RecordingTransport],
) -> None:
    app, _ = setup
    paused, other = add_people(app, "America/New_York", 2, START, prefix="reader", enroll_them=True)
    send_due(app, START)
    assert keys_sent(app, paused) == ["01-what-is-kap"]
    until = preferences.pause(app, paused, 30, START + timedelta(hours=1))
    assert until == START + timedelta(hours=1) + 30 * DAY

    hourly(app, START + timedelta(hours=2), until - timedelta(minutes=1))
    assert keys_sent(app, paused) == ["01-what-is-kap"], "nothing at all while paused"
    assert len(keys_sent(app, other)) == 5, "the pause is one reader's, not everyone's"

    # The pause ends by itself: the next email is the one they would have had next.
    hourly(app, until, until + 2 * DAY)
    assert keys_sent(app, paused) == ["01-what-is-kap", "02-the-neuroscience"]
    with transaction(app.engine) as session:
        person = session.get(m.Subscriber, paused)
        assert person is not None and person.status == m.SubscriberStatus.ACTIVE, "a pause never loses anyone"


def test_newsletter_off_keeps_the_series_and_series_off_keeps_the_newsletter(
    setup: tuple[App, RecordingTransport],
) -> None:
    app, transport = setup
    no_letter, no_series, both = add_people(
        app, "America/New_York", 3, START - 20 * DAY, prefix="reader", enroll_them=True
    )
    choose(app, no_letter, START - 20 * DAY, newsletter=False)
    choose(app, no_series, START - 20 * DAY, series=False)
    letter = schedule(app, newsletter_file(app, WINTER), "2026-12-01 10:00", "subscriber", START - 21 * DAY)
    hourly(app, START - 20 * DAY, START + 2 * DAY)

    stream = f"newsletter:{letter}"
    assert "newsletter" not in keys_sent(app, no_letter)
    assert len(keys_sent(app, no_letter)) == 5, "newsletter off: the whole series still comes"
    assert keys_sent(app, no_series) == ["newsletter"], "series off: only the newsletter"
    assert len(keys_sent(app, both)) == 6
    assert {r.stream for r in transport.sent} == {"kap-intro", stream}

    # Series back on: it starts from the first email they have not had.
    choose(app, no_series, START + 2 * DAY, series=True)
    send_due(app, START + 3 * DAY)
    assert keys_sent(app, no_series) == ["newsletter", "01-what-is-kap"]


def test_at_most_one_a_week_spaces_every_email_seven_days_apart(
    setup: tuple[App, RecordingTransport],
) -> None:
    app, _ = setup
    weekly, daily = add_people(app, "America/New_York", 2, START, prefix="reader", enroll_them=True)
    choose(app, weekly, START, frequency=m.Frequency.WEEKLY)
    hourly(app, START, START + 40 * DAY)
    with transaction(app.engine) as session:
        sent = list(
            session.scalars(
                select(m.Delivery.claimed_at)
                .where(m.Delivery.subscriber_id == weekly, m.Delivery.status == m.DeliveryStatus.SENT)
                .order_by(m.Delivery.claimed_at)
            )
        )
    assert len(sent) == 5
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
    assert all(gap >= 7 * DAY for gap in gaps), gaps
    assert min(gaps) < 8 * DAY, "the next email goes in the first window after the week"
    assert len(keys_sent(app, daily)) == 5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"pause": 30}, ("held", "01-what-is-kap")),
        ({"series": False}, ("held", "01-what-is-kap")),
    ],
)
def test_a_choice_made_between_claim_and_transport_holds_the_series_email_for_later(
    setup: tuple[App, RecordingTransport],
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, object],
    expected: tuple[str, str],
) -> None:
    app, transport = setup
    reader, other = add_people(app, "America/New_York", 2, START, prefix="reader", enroll_them=True)
    claim = SendingPass._claim

    def claim_then_choose(self: SendingPass, room: int) -> list:  # type: ignore[type-arg]
        claims = claim(self, room)
        if claims:  # the reader makes their choice after the claim, before the transport
            if "pause" in change:
                preferences.pause(app, reader, int(change["pause"]), self.now)  # type: ignore[call-overload]
            else:
                choose(app, reader, self.now, **change)
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_choose)
    summary = send_due(app, START)
    assert (summary.sent, summary.released) == (1, 1)
    assert [r.to_email for r in transport.sent] == ["reader1@example.com"]
    monkeypatch.setattr(SendingPass, "_claim", claim)
    with transaction(app.engine) as session:
        enrollment = session.scalar(select(m.Enrollment).where(m.Enrollment.subscriber_id == reader))
        assert enrollment is not None and enrollment.next_step_key == expected[1], "given back, not lost"
    # Lifted: the same email goes out.
    if "pause" in change:
        preferences.resume(app, reader, START + DAY)
    else:
        choose(app, reader, START + DAY, series=True)
    send_due(app, START + DAY)
    assert keys_sent(app, reader) == ["01-what-is-kap"]


def test_newsletter_turned_off_between_claim_and_transport_is_skipped(
    setup: tuple[App, RecordingTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, transport = setup
    reader, _ = add_people(app, "America/New_York", 2, START - DAY, prefix="reader")
    schedule(app, newsletter_file(app, WINTER), "2026-12-01 09:00", "subscriber", START - 2 * DAY)
    claim = SendingPass._claim

    def claim_then_choose(self: SendingPass, room: int) -> list:  # type: ignore[type-arg]
        claims = claim(self, room)
        if claims:
            choose(app, reader, self.now, newsletter=False)
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_choose)
    summary = send_due(app, START)
    assert (summary.sent, summary.skipped) == (1, 1)
    with transaction(app.engine) as session:
        row = session.scalar(select(m.Delivery).where(m.Delivery.subscriber_id == reader))
        assert row is not None
        assert row.status == m.DeliveryStatus.SKIPPED
        assert row.error == "skipped: the reader turned these emails off or paused them"
    assert [r.to_email for r in transport.sent] == ["reader1@example.com"]


def test_weekly_chosen_between_claim_and_transport_waits_for_the_week(
    setup: tuple[App, RecordingTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = setup
    [reader] = add_people(app, "America/New_York", 1, START - DAY, prefix="reader", enroll_them=True)
    send_due(app, START - DAY + timedelta(hours=1))  # the first email, yesterday
    assert keys_sent(app, reader) == ["01-what-is-kap"]
    with transaction(app.engine) as session:  # the next one is due now
        enrollment = session.scalar(select(m.Enrollment).where(m.Enrollment.subscriber_id == reader))
        assert enrollment is not None
        enrollment.next_due_at = START
    claim = SendingPass._claim

    def claim_then_choose(self: SendingPass, room: int) -> list:  # type: ignore[type-arg]
        claims = claim(self, room)
        if claims:
            choose(app, reader, self.now, frequency=m.Frequency.WEEKLY)
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_choose)
    summary = send_due(app, START)
    assert (summary.sent, summary.released) == (0, 1)
    monkeypatch.setattr(SendingPass, "_claim", claim)
    hourly(app, START + timedelta(hours=1), START + 5 * DAY)
    assert keys_sent(app, reader) == ["01-what-is-kap"], "within the week: nothing more"
    hourly(app, START + 5 * DAY + timedelta(hours=1), START + 7 * DAY)
    assert keys_sent(app, reader) == ["01-what-is-kap", "02-the-neuroscience"]
