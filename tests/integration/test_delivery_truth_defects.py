"""The five defects of issue 21, each as an operator meets it, against the SendGrid stand-in
(a real HTTP server), signed events (a fresh EC key) and real `nurture` processes.
Each test failed on main before the fix (169ccb3)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.providers.base import Batch, Outcome, Transport
from nurture.sending.claims import Claim
from nurture.sending.deliveries import list_stuck, release, release_claims
from nurture.sending.evidence import WAITS_FOR_OUTAGE
from nurture.sending.sendpass import SendingPass, send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at, make_app
from tests.support.processes import STEP_TIMES, Project, iso
from tests.support.provider_events import events_for, post_events
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.webserver import WebhookSigner

START = at("2026-12-01 14:00")  # Tuesday, 09:00 in New York
FIRST = at("2026-12-01 15:00")
OWNER = "owner@practice.example"


@pytest.fixture
def signer() -> WebhookSigner:
    return WebhookSigner()


def sendgrid_app(tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner, **overrides: object) -> App:
    environ = {"SENDGRID_API_KEY": "SG.test", "NURTURE_SENDGRID_HOST": standin.url, **signer.environ}
    settings = {
        "delivery.transport": "sendgrid",
        "delivery.batch_size": 5,
        "delivery.concurrency": 1,
        "delivery.request_timeout": 0.3,
        "practice.owner_email": OWNER,
    }
    return make_app(tmp_path, environ=environ, **{**settings, **overrides})


def statuses(app: App) -> dict[int, str]:
    with transaction(app.engine) as session:
        return dict(session.execute(select(m.Delivery.id, m.Delivery.status)).all())


def claimed(app: App) -> set[int]:
    return {i for i, status in statuses(app).items() if status == m.DeliveryStatus.CLAIMED}


def subscriber_status(app: App, subscriber_id: int) -> str:
    with transaction(app.engine) as session:
        return str(session.scalar(select(m.Subscriber.status).where(m.Subscriber.id == subscriber_id)))


def email_of(app: App, subscriber_id: int) -> str:
    with transaction(app.engine) as session:
        return str(session.scalar(select(m.Subscriber.email).where(m.Subscriber.id == subscriber_id)))


def wait_for_messages(standin: SendGridStandIn, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(standin.messages()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(standin.messages()) >= count


def copies(standin: SendGridStandIn) -> Counter[str]:
    return Counter(message.to_email for message in standin.messages() if message.to_email != OWNER)


# ---------------------------------------------------------------- 1. ids reused


def test_a_late_event_for_a_released_email_never_lands_on_whoever_got_its_id(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    first = active_subscribers(app, 1, START)[0]
    standin.fail_next(hang=0.6, deliver=True)  # SendGrid takes it, its answer is lost
    assert send_due(app, FIRST).unknown == 1
    wait_for_messages(standin, 2)  # and the probe to the practice's address
    late = next(message for message in standin.messages() if message.to_email != OWNER)
    # The owner releases it by hand; a new person arrives and is claimed first.
    assert release(app, FIRST + timedelta(hours=1), older_than=timedelta(minutes=10)) == 1
    newcomer = active_subscribers(app, 1, START, prefix="newcomer")[0]
    send_due(app, FIRST + timedelta(hours=1))
    # The first email's bounce comes in late: it is the first person's, nobody else's.
    post_events(app, signer, events_for([late], "bounce", reason="550 no such user"))
    assert subscriber_status(app, newcomer) == m.SubscriberStatus.ACTIVE
    assert subscriber_status(app, first) != m.SubscriberStatus.ACTIVE
    with transaction(app.engine) as session:
        tied = session.execute(
            select(m.Subscriber.email)
            .join(m.Delivery, m.Delivery.subscriber_id == m.Subscriber.id)
            .join(m.ProviderEvent, m.ProviderEvent.delivery_id == m.Delivery.id)
            .where(m.ProviderEvent.kind == m.EventKind.BOUNCED)
        ).all()
    assert email_of(app, newcomer) not in {row.email for row in tied}


def test_an_event_whose_address_is_not_the_recipients_changes_nothing_and_is_counted(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    people = active_subscribers(app, 2, START)
    assert send_due(app, FIRST).sent == 2
    message = next(msg for msg in standin.messages() if msg.to_email == email_of(app, people[0]))
    event = events_for([message], "spamreport")[0] | {"email": email_of(app, people[1])}
    report = post_events(app, signer, [event])
    assert report.mismatched == 1 and report.suppressed == 0
    assert {subscriber_status(app, person) for person in people} == {m.SubscriberStatus.ACTIVE}
    with transaction(app.engine) as session:
        event = session.scalars(select(m.ProviderEvent)).one()
    assert event.delivery_id is None and event.address_mismatch is True


def test_a_plain_numeric_id_finds_only_a_row_claimed_before_message_keys(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    (person,) = active_subscribers(app, 1, START)
    assert send_due(app, FIRST).sent == 1
    (delivery_id,) = statuses(app)
    message = next(msg for msg in standin.messages() if msg.to_email != OWNER)
    # An event naming the keyed row by its id (as an email sent before the upgrade would):
    # ids can be reused, so it names nothing.
    by_id = events_for([message], "spamreport")[0] | {"delivery_id": str(delivery_id)}
    post_events(app, signer, [by_id])
    with transaction(app.engine) as session:
        assert session.scalars(select(m.ProviderEvent.delivery_id)).all() == [None]
        # A row from before the upgrade (no key) is still found by its id.
        session.execute(m.Delivery.__table__.update().values(message_key=None))
    old = events_for([message], "delivered")[0] | {"delivery_id": str(delivery_id)}
    post_events(app, signer, [old])
    with transaction(app.engine) as session:
        assert delivery_id in session.scalars(select(m.ProviderEvent.delivery_id)).all()


# ---------------------------------------------------------------- 2. SIGTERM / SIGINT


def _signal_project(tmp_path: Path, standin: SendGridStandIn) -> Project:
    return Project(
        tmp_path,
        f"sqlite:///{tmp_path / 'nurture.db'}",
        standin,
        **{"delivery.batch_size": 3, "delivery.concurrency": 1, "delivery.request_timeout": 20},
    )


def _started(project: Project, standin: SendGridStandIn, people: int) -> subprocess.Popen[str]:
    active_subscribers(project.app, people, STEP_TIMES[0] - timedelta(hours=1))
    process = project.start("send-due", "--now", iso(STEP_TIMES[0]))
    deadline = time.monotonic() + 30
    while standin.request_count < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert standin.request_count >= 1
    return process


def test_sigterm_stops_claiming_finishes_the_request_in_flight_and_releases_the_rest(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    standin.latency = 1.0
    project = _signal_project(tmp_path, standin)
    process = _started(project, standin, 30)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err
    # The request in flight finished and was recorded; nothing else stayed claimed.
    assert project.statuses()[m.DeliveryStatus.CLAIMED] == 0
    assert project.statuses()[m.DeliveryStatus.SENT] == len(standin.messages()) > 0
    # The next pass sends the rest, once each.
    assert project.run("send-due", "--now", iso(STEP_TIMES[0])).returncode == 0
    assert set(Counter(msg.to_email for msg in standin.messages()).values()) == {1}
    assert len(standin.messages()) == 30


def test_a_second_signal_stops_at_once_and_leaves_no_claim_that_was_never_sent(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    standin.latency = 6.0
    project = _signal_project(tmp_path, standin)
    process = _started(project, standin, 30)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 3, "did not stop at once"
    assert process.returncode == 130, err
    time.sleep(6.5)  # the stand-in finishes the request the process abandoned
    # Only the abandoned request's claims stay claimed (their outcome is unknown).
    stuck = project.claimed_subscribers()
    assert 0 < len(stuck) <= 3
    assert set(project.emails(sorted(stuck)).values()) == {msg.to_email for msg in standin.messages()}


# ---------------------------------------------------------------- 3. a webhook outage of 6-24 h


def test_a_webhook_outage_longer_than_reconcile_after_sends_no_duplicate(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    active_subscribers(app, 4, START)
    standin.fail_next(hang=0.6, deliver=True)  # SendGrid accepted them; the answer was lost
    assert send_due(app, FIRST).unknown == 4
    wait_for_messages(standin, 4)
    stuck = standin.messages()
    active_subscribers(app, 3, START, prefix="later")
    assert send_due(app, FIRST + timedelta(minutes=30)).sent == 3
    later = [msg for msg in standin.messages() if msg not in stuck]
    # The webhook was down; it is back after 7 hours, and SendGrid's retries bring the later
    # batch's events first (each batch is retried on its own schedule).
    post_events(app, signer, events_for(later), FIRST + timedelta(hours=7))
    assert send_due(app, FIRST + timedelta(hours=7)).reconciled == 0
    assert send_due(app, FIRST + timedelta(hours=20)).reconciled == 0
    post_events(app, signer, events_for(stuck), FIRST + timedelta(hours=21))  # the first batch's retry
    assert send_due(app, FIRST + timedelta(hours=26)).stuck == 0
    assert set(copies(standin).values()) == {1}, "a webhook outage sent someone the same email twice"


def test_an_outage_longer_than_the_retry_window_leaves_the_rows_to_the_owner_and_sends_nothing_twice(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    active_subscribers(app, 3, START)
    standin.fail_next(hang=0.6, deliver=True)  # accepted, answer lost; its events never come
    assert send_due(app, FIRST).unknown == 3
    wait_for_messages(standin, 4)  # and the probe
    # The webhook is down for 30 hours: SendGrid gave up on every event of the first day.
    # The first events to arrive are for an email sent after the outage.
    active_subscribers(app, 1, START, prefix="after")
    assert send_due(app, FIRST + timedelta(hours=29)).sent == 1
    after = [message for message in standin.messages() if message.to_email.startswith("after")]
    post_events(app, signer, events_for(after), FIRST + timedelta(hours=30))
    later = send_due(app, FIRST + timedelta(hours=31))
    assert (later.reconciled, later.stuck) == (0, 3)
    assert set(copies(standin).values()) == {1}
    rows = list_stuck(app, FIRST + timedelta(hours=31))
    assert {row["waits_for"] for row in rows} == {WAITS_FOR_OUTAGE}


# ---------------------------------------------------------------- 4. the last claims of a pass


def test_the_last_claims_before_a_crash_settle_by_themselves_after_the_retry_window(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer)
    people = active_subscribers(app, 3, START)
    standin.fail_next(hang=0.6, deliver=False)  # never reached SendGrid; nothing after them
    assert send_due(app, FIRST).unknown == 3
    # The webhook works: whatever SendGrid has, it reports.
    send_due(app, FIRST + timedelta(minutes=15))
    assert [message.to_email for message in standin.messages()] == [OWNER]  # the probe
    post_events(app, signer, events_for(standin.messages()), FIRST + timedelta(minutes=16))
    day_after = send_due(app, FIRST + timedelta(hours=25))
    post_events(app, signer, events_for(standin.messages()), FIRST + timedelta(hours=25, minutes=1))
    assert send_due(app, FIRST + timedelta(hours=25, minutes=5)).stuck == 0
    assert day_after.reconciled == 3
    assert copies(standin) == Counter({email_of(app, person): 1 for person in people})
    assert claimed(app) == set()


# ---------------------------------------------- 5. claim-ahead; a transport that cannot start


class Counting:
    """The real transport; at each request, how many claims are held but not handed over."""

    name = "sendgrid"

    def __init__(self, inner: Transport, app: App) -> None:
        self.inner, self.app = inner, app
        self.handed: set[int] = set()
        self.most_held = 0

    def send(self, batch: Batch) -> list[Outcome]:
        self.handed |= {int(envelope.delivery_id) for envelope in batch.envelopes}
        # Measured after a moment, so that the claim of the next batch (in its own thread) has
        # surely been made: on a busy machine it could otherwise not have started yet.
        time.sleep(0.05)
        self.most_held = max(self.most_held, len(claimed(self.app) - self.handed))
        return self.inner.send(batch)

    def close(self) -> None:
        self.inner.close()


def test_a_worker_holds_at_most_two_batches_of_claims_beyond_what_is_in_flight(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner
) -> None:
    app = sendgrid_app(tmp_path, standin, signer, **{"delivery.concurrency": 2})
    active_subscribers(app, 60, START)
    counting = Counting(app.transport, app)
    app.use_transport(counting)
    assert send_due(app, FIRST).sent == 60
    # The batch being built and the next one, claimed meanwhile (batches of 5).
    assert 0 < counting.most_held <= 10


def test_a_batch_released_before_its_handover_is_not_sent_and_released_once(
    tmp_path: Path, standin: SendGridStandIn, signer: WebhookSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims released by someone else between their claim and their handed-over mark (as
    for a claim held past `reconcile_after`): that batch does not go, its claims are given
    back once, and the readers get their email from a later claim, once."""
    app = sendgrid_app(tmp_path, standin, signer, **{"delivery.concurrency": 1})
    people = active_subscribers(app, 15, START)
    build = SendingPass._build
    taken: list[int] = []

    def build_then_lose_the_first(self: SendingPass, group: list[Claim]) -> tuple[Batch | None, list[Claim]]:
        built = build(self, group)
        if not taken:
            taken.extend(claim.delivery_id for claim in group)
            with transaction(app.engine) as session:
                release_claims(session, taken, FIRST)
        return built

    monkeypatch.setattr(SendingPass, "_build", build_then_lose_the_first)
    summary = send_due(app, FIRST)
    assert len(taken) == 5 and summary.released == 5
    assert summary.sent == 15
    assert copies(standin) == Counter({email_of(app, person): 1 for person in people})
    assert claimed(app) == set()


def test_an_outbox_folder_that_cannot_be_used_releases_every_claim(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    # The folder is there, but the outbox cannot make its own record folder inside it.
    outbox = Path(app.config.delivery.outbox_dir)
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / ".deliveries").write_text("a file where a folder should be\n", encoding="utf-8")
    active_subscribers(app, 4, START)
    summary = send_due(app, FIRST)
    assert summary.fatal is not None and "outbox" in summary.fatal
    assert claimed(app) == set() and statuses(app) == {}
    assert summary.released == 4
