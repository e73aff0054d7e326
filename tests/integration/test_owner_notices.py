"""The owner's weekly summary and alerts: their numbers against a hand-built set of
deliveries, consent records and provider events, and when they go out (once)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience.consent import record_consent
from nurture.reporting.notices import send_due_notices, send_summary
from nurture.reporting.owner_summary import ALL_EMAILS, OwnerNumbers, SentLine, alert_reasons, owner_numbers
from nurture.sending.deliveries import NO_WEBHOOK
from nurture.sending.streams import PROBE_STREAM
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, active_subscribers, at, make_app, open_app, write_project

# Monday 30 November 2026, 08:00 in Los Angeles (the example config's default_timezone).
MONDAY_8 = at("2026-11-30 16:00")
NOW = MONDAY_8


OWNER = {"practice.owner_email": "owner@example.com"}


@pytest.fixture
def app_settings() -> dict[str, object]:
    return OWNER


def build_week(app: App) -> None:
    """16 emails sent in the week (8 + 3 of the series, 5 of a newsletter), 2 sent before it,
    1 failed, 1 stuck for two hours; 2 bounces and 1 complaint in the week, 1 bounce before;
    2 unsubscribes in the week, 1 before; 10 people confirmed in the week, 2 before."""
    day = timedelta(days=1)
    people = active_subscribers(app, 10, NOW - 3 * day)
    old = active_subscribers(app, 2, NOW - 10 * day, prefix="old")
    with transaction(app.engine) as session:
        newsletter = m.Newsletter(
            source_file="newsletters/2026-11.md",
            subject="November notes",
            content={},
            send_at_local="2026-11-26 10:00:00",
            timezone_mode="subscriber",
            first_due_at=NOW - 4 * day,
            status=m.NewsletterStatus.SENT,
            created_at=NOW - 5 * day,
            updated_at=NOW - 4 * day,
        )
        session.add(newsletter)
        session.flush()

        def delivery(
            subscriber: int,
            stream: str,
            step: int,
            status: str,
            finished: datetime | None,
            newsletter_id: int | None = None,
        ) -> m.Delivery:
            row = m.Delivery(
                subscriber_id=subscriber,
                stream=stream,
                step=step,
                newsletter_id=newsletter_id,
                status=status,
                worker="test",
                claimed_at=(finished or NOW - timedelta(hours=2)),
                finished_at=finished,
                error=None,
            )
            session.add(row)
            return row

        rows = [delivery(s, "kap-intro", 1, m.DeliveryStatus.SENT, NOW - 2 * day) for s in people[:8]]
        rows += [delivery(s, "kap-intro", 2, m.DeliveryStatus.SENT, NOW - day) for s in people[:3]]
        rows += [
            delivery(s, f"newsletter:{newsletter.id}", 1, m.DeliveryStatus.SENT, NOW - 4 * day, newsletter.id)
            for s in people[:5]
        ]
        rows += [delivery(s, "kap-intro", 1, m.DeliveryStatus.SENT, NOW - 9 * day) for s in old]
        delivery(people[8], "kap-intro", 1, m.DeliveryStatus.FAILED, NOW - day)
        delivery(people[9], "kap-intro", 1, m.DeliveryStatus.CLAIMED, None)
        session.flush()

        def event(n: int, kind: str, when: datetime, delivery_id: int) -> None:
            session.add(
                m.ProviderEvent(
                    provider="sendgrid",
                    provider_event_id=f"e{n}",
                    kind=kind,
                    raw_event=kind,
                    delivery_id=delivery_id,
                    stream="kap-intro",
                    step=1,
                    occurred_at=when,
                    received_at=when,
                    detail=None,
                )
            )

        event(1, m.EventKind.BOUNCED, NOW - 2 * day, rows[0].id)
        event(2, m.EventKind.BLOCKED, NOW - 2 * day, rows[1].id)
        event(3, m.EventKind.COMPLAINED, NOW - day, rows[2].id)
        event(4, m.EventKind.BOUNCED, NOW - 9 * day, rows[-1].id)
        event(5, m.EventKind.DELIVERED, NOW - 2 * day, rows[3].id)
        event(6, m.EventKind.OPENED, NOW - 2 * day, rows[3].id)
        for subscriber, when in ((people[5], NOW - day), (people[6], NOW - 2 * day), (old[0], NOW - 8 * day)):
            record_consent(session, subscriber, m.ConsentKind.UNSUBSCRIBE, when, source="test")


def test_the_weeks_numbers(app: App) -> None:
    build_week(app)
    numbers = owner_numbers(app, NOW - timedelta(days=7), NOW)
    assert numbers.new_subscribers == 10
    assert numbers.sent_total == 16
    with transaction(app.engine) as session:
        newsletter_id = session.scalar(select(m.Newsletter.id))
    assert numbers.sent == [
        SentLine("kap-intro step 1", 8),
        SentLine("kap-intro step 2", 3),
        SentLine(f"newsletter {newsletter_id}: November notes", 5),
    ]
    assert (numbers.unsubscribes, numbers.bounces, numbers.complaints, numbers.failed) == (2, 2, 1, 1)
    assert (numbers.stuck.stuck, numbers.stuck.blocked, numbers.stuck.reason) == (1, 1, NO_WEBHOOK)
    assert numbers.bounce_rate == 2 / 16 and numbers.complaint_rate == 1 / 16

    reasons = alert_reasons(numbers, NOW)
    assert len(reasons) == 3
    assert reasons[0].startswith("spam complaints: 1 of 16 emails sent in 7 days (6.25%")
    assert reasons[1].startswith("bounces: 2 of 16 emails sent in 7 days (12.5%")
    assert reasons[2].startswith("1 emails have been stuck for over an hour")


def test_the_alerts_count_sends_in_one_line_with_the_same_numbers(app: App) -> None:
    build_week(app)
    [someone] = active_subscribers(app, 1, NOW - timedelta(days=20), prefix="owner-check")
    with transaction(app.engine) as session:
        session.add(
            m.Delivery(
                subscriber_id=someone,
                stream=PROBE_STREAM,
                step=1,
                status=m.DeliveryStatus.SENT,
                worker="test",
                claimed_at=NOW - timedelta(days=1),
                finished_at=NOW - timedelta(days=1),
            )
        )
    per_email = owner_numbers(app, NOW - timedelta(days=7), NOW)
    total = owner_numbers(app, NOW - timedelta(days=7), NOW, per_email=False)
    assert total.sent == [SentLine(ALL_EMAILS, 16)], "the delivery check is not counted"
    assert total.sent_total == per_email.sent_total == 16
    assert replace(total, sent=per_email.sent) == per_email
    assert alert_reasons(total, NOW) == alert_reasons(per_email, NOW)
    nothing = owner_numbers(app, NOW - timedelta(days=30), NOW - timedelta(days=20), per_email=False)
    assert nothing.sent == [] and nothing.sent_total == 0


@pytest.mark.parametrize(
    ("sent", "bounces", "complaints", "alerts"),
    [(1000, 0, 1, ["spam"]), (1001, 0, 1, []), (1000, 20, 0, ["bounces"]), (1000, 19, 0, []), (0, 0, 0, [])],
)
def test_alert_thresholds(sent: int, bounces: int, complaints: int, alerts: list[str]) -> None:
    numbers = OwnerNumbers(
        NOW - timedelta(days=7),
        NOW,
        sent=[SentLine("kap-intro step 1", sent)] if sent else [],
        bounces=bounces,
        complaints=complaints,
    )
    assert [reason.split(" ")[0].rstrip(":") for reason in alert_reasons(numbers, NOW)] == alerts


def outbox_messages(app: App) -> list[EmailMessage]:
    return [
        message_from_bytes(path.read_bytes(), policy=default_policy)
        for path in sorted(app.config.outbox_dir.glob("*.eml"))
    ]  # type: ignore[misc]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content()


def test_the_summary_email_renders_through_the_templates_and_goes_to_the_owner(app: App) -> None:
    build_week(app)
    send_summary(app, NOW)
    [message] = outbox_messages(app)
    assert message["To"] == "owner@example.com"
    assert message["Subject"] == "Weekly summary: 16 emails sent, 10 new subscribers"
    assert "List-Unsubscribe" not in message
    text = body(message)
    for line in (
        "New subscribers: 10",
        "kap-intro step 1: 8",
        "kap-intro step 2: 3",
        "November notes: 5",
        "Unsubscribes: 2",
        "Bounces: 2 (12.5% of sent)",
        "Spam complaints: 1 (6.25% of sent)",
        "Failed: 1",
        "Stuck now: 1",
        "Needs your attention",
    ):
        assert line in text
    assert "example.com" not in text.replace("owner@example.com", ""), "no subscriber address in the summary"
    html = message.get_body(("html",))
    assert html is not None and "kap-intro step 1: 8" in html.get_content()


def test_the_run_loop_sends_the_summary_from_monday_8_once_and_each_alert_once(app: App) -> None:
    build_week(app)
    # 6.25% complaints and 12.5% bounces: past both stop lines, so two holds and their alerts;
    # and the stuck email's alert, which (unlike the others) comes back daily while it lasts.
    assert send_due_notices(app, NOW - timedelta(minutes=1), weekly=True) == [
        "alert (complaints-stop)",
        "alert (bounces-pause)",
        "alert (stuck)",
    ]
    assert send_due_notices(app, NOW, weekly=True) == ["summary"]
    summary = body(outbox_messages(app)[-1])
    assert "kap-intro step 1: 8" in summary and ALL_EMAILS not in summary, "the summary counts per email"
    assert send_due_notices(app, NOW + timedelta(hours=3), weekly=True) == []
    assert send_due_notices(app, NOW + timedelta(days=1), weekly=True) == ["alert (stuck)"]
    assert send_due_notices(app, NOW + timedelta(days=6), weekly=True) == ["alert (stuck)"]
    # A week on, the rates have left the window, but the stuck email is still stuck.
    assert send_due_notices(app, NOW + timedelta(days=7), weekly=True) == ["alert (stuck)", "summary"]
    subjects = [message["Subject"] for message in outbox_messages(app)]
    assert subjects.count("Action needed: emails are stuck") == 4
    assert subjects.count("Newsletters held: too many spam complaints") == 1
    assert subjects.count("Sending paused: too many emails bounce") == 1
    with transaction(app.engine) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(m.OwnerNotice).where(m.OwnerNotice.kind == "summary")
            )
            == 2
        )


def test_a_quiet_week_sends_no_alert(app: App) -> None:
    active_subscribers(app, 2, NOW - timedelta(days=2))
    assert send_due_notices(app, NOW - timedelta(days=4), weekly=True) == [], (
        "a Thursday start waits for Monday"
    )
    assert send_due_notices(app, NOW, weekly=False) == []
    assert send_due_notices(app, NOW, weekly=True) == ["summary"]
    [message] = outbox_messages(app)
    assert "Nothing needs your attention this week." in body(message)


def test_summary_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nurture.cli.main import cli

    config = write_project(tmp_path, OWNER)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--config", str(config), "summary", "--now", "2026-11-30T16:00:00Z", "--to", "someone@example.org"],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("summary sent: 0 emails sent, 0 new subscribers")
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    assert "someone@example.org" in eml.read_text()

    (tmp_path / "other").mkdir()
    unset = write_project(tmp_path / "other")
    result = runner.invoke(cli, ["--config", str(unset), "summary"])
    assert result.exit_code != 0
    assert "practice.owner_email is not set" in result.stderr and "Traceback" not in result.output


def test_several_machines_send_each_notice_once(tmp_path: Path, both_stores: str) -> None:
    """Four workers (each its own engine, as on four machines) run the notices at the same
    moment: one summary and one email per alert, however the race falls."""
    app = make_app(tmp_path, database_url=both_stores, **OWNER)
    build_week(app)
    machines = [open_app(app.config) for _ in range(4)]
    sent: list[list[str]] = []
    start = threading.Barrier(len(machines))

    def worker(machine: App) -> None:
        start.wait()
        sent.append(send_due_notices(machine, NOW, weekly=True))

    threads = [threading.Thread(target=worker, args=(machine,)) for machine in machines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = sorted(notice for notices in sent for notice in notices)
    assert every == ["alert (bounces-pause)", "alert (complaints-stop)", "alert (stuck)", "summary"]
    subjects = sorted(str(message["Subject"]) for message in outbox_messages(app))
    assert len(subjects) == 4 and len(set(subjects)) == 4
