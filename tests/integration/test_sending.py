"""The sending pass in one process: series order, windows, cap, consent at send time,
and the SendGrid transport against the local stand-in (a real HTTP server)."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience.people import tag
from nurture.audience.signup import unsubscribe
from nurture.sending.deliveries import count_stuck, list_stuck, release
from nurture.sending.sendpass import SendingPass, send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at, make_app, open_app
from tests.support.sendgrid_standin import SendGridStandIn

START = at("2026-12-01 14:00")  # Tuesday, 09:00 in New York


def sendgrid_app(tmp_path: Path, standin: SendGridStandIn, key: str = "SG.test", **overrides: object) -> App:
    environ = {"SENDGRID_API_KEY": key, "NURTURE_SENDGRID_HOST": standin.url}
    return make_app(tmp_path, environ=environ, **{"delivery.transport": "sendgrid", **overrides})


def deliveries(app: App) -> list[m.Delivery]:
    with transaction(app.engine) as session:
        return list(session.scalars(select(m.Delivery).order_by(m.Delivery.id)))


def run_days(app: App, start: object, days: int, every: timedelta = timedelta(hours=1)) -> None:
    moment = start
    end = start + timedelta(days=days)  # type: ignore[operator]
    while moment <= end:  # type: ignore[operator]
        send_due(app, moment)  # type: ignore[arg-type]
        moment += every  # type: ignore[operator]


def test_whole_series_goes_out_once_in_order_inside_the_window(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 3, START, timezone_name="Asia/Kolkata")
    run_days(app, START, 22)
    rows = deliveries(app)
    assert len(rows) == 15
    assert all(row.status == m.DeliveryStatus.SENT for row in rows)
    by_person: dict[int, list[m.Delivery]] = {}
    for row in rows:
        by_person.setdefault(row.subscriber_id or 0, []).append(row)
    campaign = app.campaigns["kap-intro"]
    for sent in by_person.values():
        assert [row.step for row in sent] == [1, 2, 3, 4, 5]
        for earlier, later in zip(sent, sent[1:], strict=False):
            gap = later.claimed_at - earlier.claimed_at
            assert gap >= timedelta(days=campaign.step(later.step).delay_days)
        for row in sent:
            local = row.claimed_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata"))
            assert 9 <= local.hour < 17
    assert len(list(app.config.outbox_dir.glob("*.eml"))) == 15


def test_outbox_messages_carry_one_click_headers_and_both_parts(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 1, START)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 1
    message = message_from_bytes(
        next(app.config.outbox_dir.glob("*.eml")).read_bytes(), policy=default_policy
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://mail.example.com/unsubscribe/")
    assert [part.get_content_type() for part in message.walk()][1:] == ["text/plain", "text/html"]


def test_nothing_is_sent_outside_the_window_and_the_step_waits_for_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 2, START, timezone_name="America/Los_Angeles")
    early = send_due(app, at("2026-12-01 15:00"))  # 07:00 in Los Angeles
    assert early.sent == 0 and early.rescheduled == 2
    assert send_due(app, at("2026-12-01 16:59")).sent == 0
    assert send_due(app, at("2026-12-01 17:00")).sent == 2  # 09:00 PST


def test_daily_cap_across_two_series_same_local_day(tmp_path: Path, both_stores: str) -> None:
    app = make_app(tmp_path, database_url=both_stores, **{"delivery.max_emails_per_day": 1})
    shutil.copytree(tmp_path / "campaigns" / "kap-intro", tmp_path / "campaigns" / "second-series")
    app = open_app(app.config)
    active_subscribers(app, 4, START)
    first = send_due(app, at("2026-12-01 15:00"))
    assert first.sent == 4 and first.rescheduled == 4
    assert send_due(app, at("2026-12-01 20:00")).sent == 0  # still Dec 1 in New York
    next_day = send_due(app, at("2026-12-02 14:30"))  # 09:30 Dec 2 in New York
    assert next_day.sent == 4
    per_day = Counter((row.subscriber_id, row.claimed_at.date()) for row in deliveries(app))
    assert set(per_day.values()) == {1}


def test_cap_counts_the_subscribers_local_day_not_utc(tmp_path: Path, both_stores: str) -> None:
    app = make_app(tmp_path, database_url=both_stores, **{"delivery.max_emails_per_day": 1})
    shutil.copytree(tmp_path / "campaigns" / "kap-intro", tmp_path / "campaigns" / "second-series")
    app = open_app(app.config)
    active_subscribers(app, 1, at("2026-12-01 00:00"), timezone_name="Pacific/Auckland")
    # 2026-12-01 20:30Z is 09:30 on Dec 2 in Auckland; 2026-12-02 03:00Z is 16:00 the same local day.
    assert send_due(app, at("2026-12-01 20:30")).sent == 1
    assert send_due(app, at("2026-12-02 03:00")).sent == 0
    assert send_due(app, at("2026-12-02 20:30")).sent == 1  # Dec 3 local


def test_only_active_subscribers_get_marketing_email(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 4, START)
    with transaction(app.engine) as session:
        for subscriber_id, status in zip(  # the fourth stays active
            ids,
            [m.SubscriberStatus.PENDING, m.SubscriberStatus.BOUNCED, m.SubscriberStatus.COMPLAINED],
            strict=False,
        ):
            session.get(m.Subscriber, subscriber_id).status = status  # type: ignore[union-attr]
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 1
    assert [row.subscriber_id for row in deliveries(app)] == [ids[3]]


def test_unsubscribe_between_claim_and_transport_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 3, START)
    claim = SendingPass._claim

    def claim_then_unsubscribe(self: SendingPass, room: int) -> list:  # type: ignore[type-arg]
        claims = claim(self, room)
        if claims:  # the person leaves after the claim, before the transport runs
            unsubscribe(app, ids[1], self.now, source="test")
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_unsubscribe)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert (summary.sent, summary.skipped) == (2, 1)
    statuses = {row.subscriber_id: row.status for row in deliveries(app)}
    assert statuses[ids[1]] == m.DeliveryStatus.SKIPPED
    assert len(list(app.config.outbox_dir.glob("*.eml"))) == 2


def test_a_stop_tag_added_between_claim_and_transport_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 3, START)
    with transaction(app.engine) as session:
        booked_email = session.get(m.Subscriber, ids[2]).email  # type: ignore[union-attr]
    claim = SendingPass._claim

    def claim_then_tag(self: SendingPass, room: int) -> list:  # type: ignore[type-arg]
        claims = claim(self, room)
        if claims:  # the practice marks the person as booked after the claim
            tag(app, booked_email, "booked", self.now)
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_tag)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert (summary.sent, summary.skipped) == (2, 1)
    row = {row.subscriber_id: row for row in deliveries(app)}[ids[2]]
    assert (row.status, row.error) == (m.DeliveryStatus.SKIPPED, "skipped: has a stop tag of this series")
    assert len(list(app.config.outbox_dir.glob("*.eml"))) == 2
    monkeypatch.setattr(SendingPass, "_claim", claim)
    run_days(app, at("2026-12-01 16:00"), 20)
    assert (
        Counter(row.subscriber_id for row in deliveries(app) if row.status == m.DeliveryStatus.SENT)[ids[2]]
        == 0
    )


def test_goal_tag_ends_the_series_before_the_booking_email(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 2, START)
    run_days(app, START, 9)  # steps 1-3
    with transaction(app.engine) as session:
        booked_email = session.get(m.Subscriber, ids[0]).email  # type: ignore[union-attr]
    tag(app, booked_email, "booked", at("2026-12-10 12:00"))
    run_days(app, at("2026-12-10 12:00"), 14)
    steps = Counter(row.subscriber_id for row in deliveries(app))
    assert steps[ids[0]] == 3
    assert steps[ids[1]] == 5


def test_paused_campaign_holds_and_resume_releases(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 2, START)
    with transaction(app.engine) as session:
        session.add(m.CampaignState(campaign="kap-intro", paused=True, updated_at=START))
    assert send_due(app, at("2026-12-01 15:00")).sent == 0
    with transaction(app.engine) as session:
        session.get(m.CampaignState, "kap-intro").paused = False  # type: ignore[union-attr]
    assert send_due(app, at("2026-12-01 15:05")).sent == 2


def test_limit_claims_at_most_n(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 10, START)
    assert send_due(app, at("2026-12-01 15:00"), limit=4).sent == 4
    assert send_due(app, at("2026-12-01 15:01")).sent == 6


# ---------------------------------------------------------------- SendGrid stand-in


def test_sendgrid_batches_and_personalizes(tmp_path: Path, standin: SendGridStandIn) -> None:
    app = sendgrid_app(tmp_path, standin, **{"delivery.batch_size": 100})
    ids = active_subscribers(app, 250, START)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 250
    assert sorted(len(r.body["personalizations"]) for r in standin.requests) == [50, 100, 100]
    messages = standin.messages()
    assert len({message.to_email for message in messages}) == 250
    by_delivery = {row.message_key: row for row in deliveries(app)}
    for message in messages:
        args = message.custom_args
        assert set(args) == {"delivery_id"}  # an opaque id only: no campaign name, no step
        row = by_delivery[args["delivery_id"]]  # an opaque key, never the row id (ids can be reused)
        assert (row.stream, row.step) == ("kap-intro", 1)
        assert row.provider_message_id == message.message_id
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.to_name and message.to_name in message.html  # type: ignore[operator]
        assert "/unsubscribe/" in (message.text or "")
        assert message.to_email not in str(args)
    assert {row.subscriber_id for row in by_delivery.values()} == set(ids)


def test_sendgrid_429_and_5xx_are_retried_without_duplicates(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    app = sendgrid_app(tmp_path, standin, **{"delivery.batch_size": 50, "delivery.concurrency": 1})
    active_subscribers(app, 100, START)
    standin.fail_next(429, reset_in=0.2)
    standin.fail_next(503)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 100 and summary.failed == 0
    addresses = Counter(message.to_email for message in standin.messages())
    assert len(addresses) == 100 and set(addresses.values()) == {1}


def test_sendgrid_400_fails_that_batch_only(tmp_path: Path, standin: SendGridStandIn) -> None:
    app = sendgrid_app(tmp_path, standin, **{"delivery.batch_size": 10, "delivery.concurrency": 1})
    active_subscribers(app, 30, START)
    standin.fail_next(400, message="The from address does not match a verified Sender Identity.")
    summary = send_due(app, at("2026-12-01 15:00"))
    assert (summary.sent, summary.failed) == (20, 10)
    failed = [row for row in deliveries(app) if row.status == m.DeliveryStatus.FAILED]
    assert len(failed) == 10
    assert all("verified Sender Identity" in (row.error or "") for row in failed)
    assert send_due(app, at("2026-12-01 15:05")).sent == 0  # a refused batch is not resent by itself


def test_sendgrid_bad_key_stops_the_run_and_releases_every_unsent_claim(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    app = sendgrid_app(tmp_path, standin, key="SG.wrong", **{"delivery.batch_size": 10})
    active_subscribers(app, 50, START)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.fatal is not None and "rejected the API key" in summary.fatal
    assert summary.sent == 0
    assert deliveries(app) == []  # nothing left claimed: an exact account of what was not sent
    assert standin.messages() == []
    fixed = sendgrid_app(tmp_path, standin)
    assert send_due(fixed, at("2026-12-01 15:05")).sent == 50


def test_no_answer_leaves_the_claim_stuck_and_never_resends(tmp_path: Path, standin: SendGridStandIn) -> None:
    app = sendgrid_app(
        tmp_path,
        standin,
        **{"delivery.batch_size": 5, "delivery.concurrency": 1, "delivery.request_timeout": 0.5},
    )
    active_subscribers(app, 5, START)
    standin.fail_next(hang=2.0)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert (summary.sent, summary.unknown, summary.stuck) == (0, 5, 5)
    assert send_due(app, at("2026-12-01 16:00")).sent == 0
    stuck = list_stuck(app, at("2026-12-01 16:00"))
    assert len(stuck) == 5 and all("outcome unknown" in row["error"] for row in stuck)
    assert standin.request_count == 1
    # The owner checked the provider's activity feed: not delivered. Release, and it goes out.
    assert release(app, at("2026-12-01 16:00"), ids=[row["id"] for row in stuck]) == 5
    assert send_due(app, at("2026-12-01 16:01")).sent == 5
    assert count_stuck(app, at("2026-12-01 16:02")) == 0
    assert len(standin.messages()) == 5


def test_sandbox_mode_validates_without_delivering(tmp_path: Path, standin: SendGridStandIn) -> None:
    app = sendgrid_app(tmp_path, standin, **{"delivery.sandbox_mode": True})
    active_subscribers(app, 3, START)
    assert send_due(app, at("2026-12-01 15:00")).sent == 3
    assert len(standin.sandboxed_requests) == 1 and standin.messages() == []


def test_each_delivery_row_is_unique_per_step(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 5, START)
    run_days(app, START, 22, every=timedelta(minutes=30))
    with transaction(app.engine) as session:
        duplicates = session.execute(
            select(m.Delivery.subscriber_id, m.Delivery.stream, m.Delivery.step, func.count())
            .group_by(m.Delivery.subscriber_id, m.Delivery.stream, m.Delivery.step)
            .having(func.count() > 1)
        ).all()
    assert duplicates == []
    assert len(deliveries(app)) == 25


def test_one_unusable_recipient_fails_alone(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 3, START)
    with transaction(app.engine) as session:
        # A row written by hand around the validation: an address that would inject a header.
        session.get(m.Subscriber, ids[1]).email = "bad\r\nBcc: someone@example.com"  # type: ignore[union-attr]
    summary = send_due(app, at("2026-12-01 15:00"))
    assert (summary.sent, summary.failed) == (2, 1)
    failed = [row for row in deliveries(app) if row.status == m.DeliveryStatus.FAILED]
    assert [row.subscriber_id for row in failed] == [ids[1]]
    for path in app.config.outbox_dir.glob("*.eml"):
        assert b"Bcc" not in path.read_bytes()
