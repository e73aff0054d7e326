"""Stuck deliveries settled by evidence (issue 13, DESIGN.md invariant 8), in one process,
against the SendGrid stand-in (a real HTTP server) and signed events (a fresh EC key)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.providers.base import Batch, Outcome, Transport
from nurture.sending.deliveries import NO_WEBHOOK, SILENT_WEBHOOK, reconcile_status
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at, make_app
from tests.support.provider_events import delivery_ids, events_for, post_events
from tests.support.sendgrid_standin import SendGridStandIn, StandInMessage
from tests.support.webserver import WebhookSigner

START = at("2026-12-01 14:00")  # Tuesday, 09:00 in New York
FIRST = at("2026-12-01 15:00")
OWNER = "owner@practice.example"


@pytest.fixture
def signer() -> WebhookSigner:
    return WebhookSigner()


def sendgrid_app(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner | None, **overrides: object
) -> App:
    environ = {
        "SENDGRID_API_KEY": "SG.test",
        "NURTURE_SENDGRID_HOST": standin.url,
        **(signer.environ if signer else {}),
    }
    settings = {
        "delivery.transport": "sendgrid",
        "delivery.batch_size": 5,
        "delivery.concurrency": 1,
        "delivery.request_timeout": 0.3,
        "practice.owner_email": OWNER,
    }
    return make_app(tmp_path, environ=environ, **{**settings, **overrides})


def rows(app: App) -> dict[int, m.Delivery]:
    with transaction(app.engine) as session:
        return {row.id: row for row in session.scalars(select(m.Delivery))}


def by_status(app: App, status: str) -> set[int]:
    return {delivery_id for delivery_id, row in rows(app).items() if row.status == status}


def make_stuck(app: App, standin: SendGridStandIn, count: int, *, received: bool) -> set[int]:
    """`count` claims whose answer never came; `received`: the stand-in got the request anyway."""
    active_subscribers(app, count, START)
    standin.fail_next(hang=0.6, deliver=received)
    summary = send_due(app, FIRST)
    assert (summary.sent, summary.unknown) == (0, count)
    if received:
        _wait(standin, count)
    return by_status(app, m.DeliveryStatus.CLAIMED)


def to_people(standin: SendGridStandIn) -> list[StandInMessage]:
    """What the stand-in received, but the probe to the practice's own address."""
    return [message for message in standin.messages() if message.to_email != OWNER]


def _wait(standin: SendGridStandIn, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(to_people(standin)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(to_people(standin)) == count


def test_any_event_naming_a_stuck_delivery_settles_it_at_once(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    stuck = make_stuck(app, standin, 5, received=True)
    keys = delivery_ids(app)
    messages = sorted(to_people(standin), key=lambda message: keys[message.custom_args["delivery_id"]])
    processed, delivered, dropped, deferred, silent = messages
    # (Opens and clicks name no delivery unless delivery.tracking is per_person: they settle nothing.)
    events = (
        events_for([processed])
        + events_for([delivered], "delivered")
        + events_for([deferred], "deferred", response="try later")
    )
    events += events_for([dropped], "processed") + events_for([dropped], "dropped", reason="Bounced Address")
    report = post_events(app, signer, events)
    assert report.settled == 4

    table = rows(app)
    ids = {message: keys[message.custom_args["delivery_id"]] for message in messages}
    assert table[ids[processed]].status == m.DeliveryStatus.SENT
    assert table[ids[processed]].error == "settled by provider event processed"
    assert table[ids[delivered]].error == "settled by provider event delivered"
    assert table[ids[deferred]].status == m.DeliveryStatus.SENT
    assert table[ids[dropped]].status == m.DeliveryStatus.FAILED
    assert "dropped" in (table[ids[dropped]].error or "") and "Bounced Address" in (
        table[ids[dropped]].error or ""
    )
    assert by_status(app, m.DeliveryStatus.CLAIMED) == {ids[silent]} and ids[silent] in stuck

    # The same events again (SendGrid retries): stored once, nothing changes.
    again = post_events(app, signer, events)
    assert (again.stored, again.settled) == (0, 0)
    assert {i: (r.status, r.error) for i, r in rows(app).items()} == {
        i: (r.status, r.error) for i, r in table.items()
    }


class AnswerLost:
    """The real SendGrid transport, but the provider's events reach us before its answer,
    and then the answer is lost (as when a read times out just as SendGrid replies)."""

    name = "sendgrid"

    def __init__(self, inner: Transport, app: App, standin: SendGridStandIn, signer: WebhookSigner) -> None:
        self.inner, self.app, self.standin, self.signer = inner, app, standin, signer

    def send(self, batch: Batch) -> list[Outcome]:
        outcomes = self.inner.send(batch)
        assert {outcome.status for outcome in outcomes} == {"sent"}
        sent = {envelope.custom_args["delivery_id"] for envelope in batch.envelopes}
        post_events(
            self.app,
            self.signer,
            events_for(msg for msg in self.standin.messages() if msg.custom_args["delivery_id"] in sent),
        )
        return [
            Outcome(outcome.delivery_id, "unknown", error="no answer (the test dropped it)")
            for outcome in outcomes
        ]

    def close(self) -> None:
        self.inner.close()


def test_an_event_that_arrives_before_the_outcome_is_recorded_still_settles_it(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    active_subscribers(app, 7, START)
    app.use_transport(AnswerLost(app.transport, app, standin, signer))
    summary = send_due(app, FIRST)
    assert summary.unknown == 7 and summary.stuck == 0
    table = rows(app)
    assert {row.status for row in table.values()} == {m.DeliveryStatus.SENT}
    assert {row.error for row in table.values()} == {"settled by provider event processed"}
    assert len(standin.messages()) == 7


def test_with_the_webhook_silent_nothing_is_released(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    stuck = make_stuck(app, standin, 4, received=False)
    # 30 hours on: past reconcile_after (6 h) and SendGrid's retry window (24 h). No email was
    # sent after them but the probe, and no event has come for it either.
    later = send_due(app, FIRST + timedelta(hours=30))
    assert (later.reconciled, later.sent, later.stuck) == (0, 0, 4)
    assert f"4 not released automatically: {SILENT_WEBHOOK}" in later.line()
    assert by_status(app, m.DeliveryStatus.CLAIMED) == stuck
    status = reconcile_status(app, FIRST + timedelta(hours=30))
    assert (status.stuck, status.blocked, status.releasable, status.reason) == (4, 4, 0, SILENT_WEBHOOK)
    assert [message.to_email for message in standin.messages()] == [OWNER]  # the probe alone


def test_a_probe_the_provider_never_took_is_sent_again_an_hour_later(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    """A probe that failed (timed out, refused) can bring no event: it does not stand for an
    email sent after the stuck ones, so the next pass an hour on probes again, and the stuck
    emails are released once that probe's events vouch for the webhook. Found by the fault
    trials (seed 3520): the probe took the fault the workers left, and 8 emails waited for
    the owner after an outage of 1.6 hours."""
    app = sendgrid_app(tmp_path, standin, signer)
    active_subscribers(app, 4, START)
    standin.fail_next(hang=0.6, deliver=False, times=2)  # the batch, then the probe
    first = send_due(app, FIRST)
    assert (first.unknown, first.probed) == (4, False)
    assert standin.messages() == []
    assert send_due(app, FIRST + timedelta(minutes=30)).probed is False  # at most one an hour
    again = send_due(app, FIRST + timedelta(minutes=70))
    assert again.probed is True
    assert [message.to_email for message in standin.messages()] == [OWNER]
    post_events(app, signer, events_for(standin.messages()), FIRST + timedelta(minutes=75))
    # SendGrid's retry window since the stuck emails' request is over: released and sent, once.
    later = send_due(app, FIRST + timedelta(hours=25))
    assert (later.reconciled, later.sent) == (4, 4)
    assert len(to_people(standin)) == 4
    assert by_status(app, m.DeliveryStatus.CLAIMED) == set()


def test_without_a_webhook_key_nothing_is_released_and_the_summary_says_why(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    app = sendgrid_app(tmp_path, standin, None)
    stuck = make_stuck(app, standin, 3, received=False)
    later = send_due(app, FIRST.replace(hour=23))
    assert later.reconciled == 0 and later.stuck == 3
    assert NO_WEBHOOK in later.line()
    assert by_status(app, m.DeliveryStatus.CLAIMED) == stuck


def test_silence_after_reconcile_after_with_a_working_webhook_sends_once(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    stuck = make_stuck(app, standin, 4, received=False)
    # Emails claimed later go out and SendGrid reports them: the webhook works.
    active_subscribers(app, 3, START, prefix="later")
    assert send_due(app, at("2026-12-01 15:30")).sent == 3
    post_events(app, signer, events_for(standin.messages()), at("2026-12-01 15:31"))

    waiting = reconcile_status(app, at("2026-12-01 16:00"))
    assert (waiting.stuck, waiting.waiting, waiting.blocked) == (4, 4, 0)
    assert send_due(app, at("2026-12-01 16:00")).reconciled == 0  # an hour is too soon to call it silence

    # Past reconcile_after (6 h) but within SendGrid's retry window (24 h): still waiting.
    assert send_due(app, at("2026-12-01 21:01")).reconciled == 0
    after = send_due(app, at("2026-12-02 15:01"))  # 24 h 1 min after the request
    assert (after.reconciled, after.sent, after.stuck) == (4, 4, 0)
    assert "4 stuck with no provider record released to send again" in after.line()
    received = [message.to_email for message in standin.messages() if message.to_email != OWNER]
    assert len(received) == 7 and len(set(received)) == 7
    assert stuck.isdisjoint(rows(app))  # released rows are gone; their emails were claimed anew
    assert by_status(app, m.DeliveryStatus.CLAIMED) == set()
    assert send_due(app, at("2026-12-03 21:01")).reconciled == 0
