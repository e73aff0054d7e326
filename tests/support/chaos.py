"""The randomized fault campaign of issue 21: one trial per seed, reproducible by its seed.

A trial, on SQLite or PostgreSQL, against the SendGrid stand-in (a real HTTP server):

1. 1-8 `nurture send-due` processes at once on one store, the stand-in answering with
   scripted faults (429, 5xx, a hang that times out the client, a request accepted and
   then its connection dropped); each worker is sent SIGKILL, SIGTERM or nothing at a
   random moment.
2. SendGrid's events for what it accepted come back through the real webhook code on a
   simulated clock: the webhook is down for 0-30 hours from the start; each batch of
   events is retried on its own until it gets through or its 24 hours are over (then it
   is dropped, as SendGrid does); events are duplicated, shuffled, and a few carry
   another person's address (a stray or forged event: it must settle and tie nothing).
   Passes run in between (the rerun, the settle period: 60 simulated hours), and their
   own emails' events follow the same rules.
3. The readers' own choices (tests/support/chaos_readers.py; their own seeded draw, so a
   seed's faults stay as they were):
   in about half the trials a newsletter is due at the same moment as the series' first
   email, and a share of the readers (none, a quarter or a half) asked for at most one
   email a week. Everyone else has the practice's limit of one a day. Between the passes
   of the settle period, some readers press the one-click unsubscribe (RFC 8058) of an email
   they got, through the real web server, on the trial's clock.
4. The owner's commands, each a real process (tests/support/chaos_owner.py), every one
   of which must succeed:
   - in about a third of the trials, while the workers run, a published edit of the
     series (the first email's subject, two days before the second instead of three):
     each first email must carry the subject of the version it was claimed under;
   - in about a quarter, while the workers run, a pause of the series, resumed before
     one of the settle period's passes: the passes before it send nothing of the series;
   - in about a third, the erasure of a reader (`subscribers forget`), while the workers
     run or before one of the settle period's passes (then of a reader who had an email):
     nothing goes to them in a pass after it, and at the end, after every late event, no
     column of any table holds their address;
   - in about a third, the series' stop tag ("booked") on a reader, likewise while the
     workers run or before a settle pass: nothing of the series goes to them after it;
   - in about two in five with a newsletter, its cancel while the workers run: nobody
     gets it in a later pass, and it stays cancelled.
5. The invariants: each (person, email) reached the provider at most once; everyone due
   got it (the email a limit held back, in passes a week later); no reader got more than
   their limit (two on one local day, or a weekly reader two within seven days); nobody
   got an email in a pass after their unsubscribe; every
   event changed only the person and delivery it names (suppressions are
   exactly the people whose own bounce arrived; every event tied to a delivery carries
   that delivery's key and its recipient's address); after the settle period nothing is
   stuck, except, after an outage reaching (within one retry) the end of the provider's
   retry window, silent emails whose events the provider would have dropped: they wait
   for the owner (the provider may or may not have them), are counted apart
   (`left_to_owner`, and not as lost), and are never sent twice.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nurture.config import load_config
from nurture.sending.deliveries import list_stuck
from nurture.sending.evidence import WAITS_FOR_OUTAGE
from nurture.sending.sendpass import send_due
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support import chaos_ledger as ledger
from tests.support import chaos_readers as readers
from tests.support.chaos_owner import (
    ALREADY_SENT,
    NEW_SUBJECT,
    OLD_SUBJECT,
    OWNER,
    SERIES,
    act,
    act_beside_workers,
    booking,
    cancels,
    erasure,
    pauses,
    publishes,
    traces,
)
from tests.support.factories import active_subscribers, open_app
from tests.support.processes import STEP_TIMES, Project, iso
from tests.support.provider_events import post_events
from tests.support.sendgrid_standin import SendGridStandIn, StandInMessage
from tests.support.webserver import WebhookSigner, sg_event

RETRY_WINDOW = timedelta(hours=24)
HANG = 1.2  # seconds a scripted hang holds a request (the client gives up after 0.5)
# After an outage, SendGrid's next try of each batch comes within this (its retries back off).
RETRY_SPACING = timedelta(minutes=90)
SETTLE = [timedelta(minutes=m) for m in (10, 40)] + [
    timedelta(hours=h) for h in (3, 7, 13, 20, 25, 26, 31, 45, 55, 60)
]
# Passes a week on, for what a reader's limit held back (the provider's events no longer matter).
WEEK_LATER = [ledger.WEEK + timedelta(hours=h) for h in (1, 26, 50)]


@dataclass
class TrialResult:
    seed: int
    database: str
    workers: int
    people: int
    outage_hours: float
    duplicates: int = 0  # (person, email) pairs that reached the provider more than once
    lost: int = 0  # people due who never got the email
    stuck: int = 0  # claimed after the settle period, other than left_to_owner
    misapplied: int = 0  # events that changed a person or delivery they do not name
    left_to_owner: int = 0  # accepted, events dropped by the provider (outage > retry window)
    refused: int = 0  # emails the provider refused on every attempt (failed, shown to the owner)
    newsletter: bool = False  # a newsletter due with the series' first email
    weekly: int = 0  # readers who asked for at most one email a week
    over_limit: int = 0  # readers who got two on one local day, or (weekly) two within 7 days
    unsubscribed: int = 0  # readers who pressed one-click unsubscribe during the settle period
    unhonoured: int = 0  # emails that reached the provider in a pass after their reader's unsubscribe
    published: bool = False  # the owner published an edit of the series while the workers ran
    owner_failed: int = 0  # the owner's commands that did not succeed
    stale_copy: int = 0  # first emails whose subject is not that of the version they were claimed under
    paused: bool = False  # the owner paused the series while the workers ran (resumed later)
    while_paused: int = 0  # emails of the series that went out in a pass while it was paused
    erased: bool = False  # the owner erased a reader (beside the workers or between passes)
    after_erasure: int = 0  # emails to that reader that went out in a pass after it
    erased_traces: int = 0  # columns that still hold that reader's address at the end
    booked: bool = False  # the owner tagged a reader with the series' stop tag
    after_booking: int = 0  # emails of the series to that reader in a pass after the tag
    cancelled: bool = False  # the owner cancelled the newsletter while the workers ran
    after_cancel: int = 0  # its emails in a pass after the workers' (or its status not cancelled)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.lost
            or self.stuck
            or self.misapplied
            or self.over_limit
            or self.unhonoured
            or self.owner_failed
            or self.stale_copy
            or self.while_paused
            or self.after_erasure
            or self.erased_traces
            or self.after_booking
            or self.after_cancel
        )

    def owner_command(self, failure: str | None) -> None:
        """Count one of the owner's commands that did not succeed (`failure`: why, or None)."""
        if failure is not None:
            self.owner_failed += 1
            self.notes.append(f"the owner's command failed: {failure}")

    def line(self) -> str:
        return (
            f"seed {self.seed} {self.database}: workers {self.workers}, people {self.people}, "
            f"weekly {self.weekly}, newsletter {'yes' if self.newsletter else 'no'}, "
            f"published {'yes' if self.published else 'no'}, paused {'yes' if self.paused else 'no'}, "
            f"outage {self.outage_hours:.1f} h: duplicates {self.duplicates}, lost {self.lost}, "
            f"stuck {self.stuck}, mis-applied {self.misapplied}, over limit {self.over_limit}, "
            f"unsubscribed {self.unsubscribed}, unhonoured {self.unhonoured}, stale copy {self.stale_copy}, "
            f"while paused {self.while_paused}, erased {'yes' if self.erased else 'no'}, "
            f"after erasure {self.after_erasure}, erased address kept {self.erased_traces}, "
            f"booked {'yes' if self.booked else 'no'}, series after booking {self.after_booking}, "
            f"cancelled {'yes' if self.cancelled else 'no'}, after cancel {self.after_cancel}, "
            f"left to owner {self.left_to_owner}, refused {self.refused}"
            + (f" ({'; '.join(self.notes)})" if self.notes else "")
        )


class EventFeed:
    """SendGrid's side of the webhook on the simulated clock: what it will post, and when."""

    def __init__(self, rng: random.Random, start: datetime, outage: timedelta, seed: int) -> None:
        self.rng, self.start, self.outage_ends, self.seed = rng, start, start + outage, seed
        self.queue: list[tuple[datetime, dict[str, Any]]] = []
        self.counter = 0
        self.genuine: list[tuple[str, str]] = []  # (message key, address) of every event generated
        self.bounced: set[str] = set()  # addresses whose own bounce will arrive
        self.dropped = 0

    def _event(self, kind: str, key: str, email: str, **fields: Any) -> dict[str, Any]:
        self.counter += 1
        return sg_event(
            kind,
            self.counter,
            delivery_id=key,
            email=email,
            sg_event_id=f"chaos-{self.seed}-{self.counter}",
            **fields,
        )

    def generated(self, messages: list[StandInMessage], at: datetime, addresses: list[str]) -> None:
        """The events of messages SendGrid accepted at `at`, scheduled as its retries would post them."""
        if not messages:
            return
        if at >= self.outage_ends:
            arrives: datetime | None = at + timedelta(minutes=self.rng.uniform(0, 5))
        else:
            # Each batch is retried on its own schedule after the webhook is back.
            arrives = self.outage_ends + RETRY_SPACING * self.rng.random()
            if arrives > at + RETRY_WINDOW:
                arrives = None  # SendGrid gave up on it
        for message in messages:
            key, email = message.custom_args["delivery_id"], message.to_email
            events = [self._event("processed", key, email), self._event("delivered", key, email)]
            if email != OWNER and self.rng.random() < 0.06:
                events.append(self._event("bounce", key, email, type="bounce", reason="550 no such user"))
                if arrives is not None:
                    self.bounced.add(email)
            if self.rng.random() < 0.04 and len(addresses) > 1:
                # A stray event: this message's key, another person's address. It must change nothing.
                other = self.rng.choice([a for a in addresses if a != email])
                events.append(self._event("delivered", key, other))
            self.genuine += [(key, email)]
            if arrives is None:
                self.dropped += len(events)
                continue
            for event in events:
                self.queue.append((arrives, event))
                if self.rng.random() < 0.15:  # posted again (a retry that had gone through)
                    self.queue.append((arrives + timedelta(minutes=self.rng.uniform(1, 120)), event))

    def due(self, now: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        ready = [item for item in self.queue if item[0] <= now]
        self.queue = [item for item in self.queue if item[0] > now]
        self.rng.shuffle(ready)
        return ready


def _fault_script(rng: random.Random, standin: SendGridStandIn) -> None:
    for _ in range(rng.randint(0, 6)):
        choice = rng.random()
        # (Not "accepted, then answered 5xx": the transport retries a 5xx, as SendGrid asks.)
        if choice < 0.3:
            standin.fail_next(429, reset_in=0.2)
        elif choice < 0.6:
            standin.fail_next(rng.choice([500, 502, 503]))
        elif choice < 0.85:
            standin.fail_next(hang=HANG, deliver=True)  # accepted, then the connection dropped
        else:
            standin.fail_next(hang=HANG, deliver=False)


def run_trial(
    seed: int, tmp_path: Path, database_url: str, database: str, standin: SendGridStandIn
) -> TrialResult:
    rng = random.Random(seed)
    workers = rng.randint(1, 8)
    people = rng.randint(8, 40)
    outage = timedelta(hours=rng.choice([0.0, rng.uniform(0, 6), rng.uniform(6, 24), rng.uniform(24, 30)]))
    result = TrialResult(seed, database, workers, people, outage.total_seconds() / 3600)
    signer = WebhookSigner()
    project = Project(
        tmp_path,
        database_url,
        standin,
        **{
            "delivery.batch_size": rng.randint(2, 5),
            "delivery.concurrency": rng.randint(1, 3),
            "delivery.request_timeout": 0.5,
            "delivery.reconcile_after": "1h",
            "practice.owner_email": OWNER,
        },
    )
    project.env |= signer.environ
    project.app.close()
    project.app = open_app(load_config(project.config_path, environ=project.env))
    start = STEP_TIMES[0]
    ids = active_subscribers(project.app, people, start - timedelta(hours=1))
    addresses = sorted(project.emails(ids).values())
    feed = EventFeed(rng, start, outage, seed)
    # 3. The readers' own choices, made before the workers start (their unsubscribes come in 2).
    newsletter_id, weekly = readers.choose(project.app, seed, ids, start)
    result.newsletter, result.weekly = newsletter_id is not None, len(weekly)

    # 1. Overlapping workers, provider faults, kills.
    standin.latency = rng.uniform(0.01, 0.08)
    _fault_script(rng, standin)
    processes = [project.start("send-due", "--now", iso(start)) for _ in range(workers)]
    # 4. The owner's commands beside the workers.
    owner = [command for command in [publishes(project, seed, start)] if command is not None]
    result.published = bool(owner)
    pausing, resume_before = pauses(project, seed, start, len(SETTLE))
    owner += [pausing] if pausing is not None else []
    result.paused = pausing is not None
    cancelling = cancels(project, seed, start, newsletter_id)
    owner += [cancelling] if cancelling is not None else []
    erasing, booked = erasure(seed, len(SETTLE)), booking(seed, len(SETTLE))
    if erasing is not None and erasing.before == 0:
        owner.append(act_beside_workers(project, erasing, addresses, start, None))
    if booked is not None and booked.before == 0:
        owner.append(act_beside_workers(project, booked, addresses, start, erasing and erasing.address))
    fates = [rng.choice(["kill", "term", "none"]) for _ in processes]
    target = rng.randint(0, 10)
    begun = time.monotonic()
    while standin.request_count < target and time.monotonic() - begun < 20:
        if all(process.poll() is not None for process in processes):
            break
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.1))
    for process, fate in zip(processes, fates, strict=True):
        if fate != "none" and process.poll() is None:
            process.send_signal(signal.SIGKILL if fate == "kill" else signal.SIGTERM)
    for process, fate in zip(processes, fates, strict=True):
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            result.notes.append("a worker did not stop in 60 s")
        if fate == "term" and process.returncode not in (0, 3, 143, -signal.SIGTERM):
            result.notes.append(f"SIGTERM exit {process.returncode}")
    for command in owner:
        result.owner_command(command.failure(ALREADY_SENT if command is cancelling else None))
    result.cancelled = cancelling is not None and cancelling.succeeded()
    time.sleep(HANG + 0.5)  # requests on the wire when their worker died still reach the provider
    seen = len(standin.messages())
    feed.generated(standin.messages()[:seen], start, addresses)
    moments = [start] * seen  # the simulated moment each message reached the provider

    def one_pass(now: datetime) -> list[StandInMessage]:
        """A pass at `now`; the messages the provider accepted in it."""
        nonlocal seen
        scripted = standin.stats()["scripted"]
        send_due(project.app, now)
        # A request the stand-in holds (a scripted hang) is recorded after the pass gave up
        # on it: wait for it, so that SendGrid's events start from this moment, not from a
        # later pass (moments only seconds apart here stand for hours).
        time.sleep(HANG + 0.5 if standin.stats()["scripted"] != scripted else 0.05)
        fresh = standin.messages()[seen:]
        seen += len(fresh)
        moments.extend([now] * len(fresh))
        return fresh

    # 2. The settle period: events as SendGrid posts them, unsubscribes, passes in between.
    leaving = random.Random(f"unsubscribes-{seed}")
    unsubscribed: dict[str, datetime] = {}  # address -> the moment its reader unsubscribed
    clock = [start]
    resumed_at = start  # while paused, no email of the series may go out
    with readers.web(project.app, clock) as site:
        for index, offset in enumerate(SETTLE):
            now = clock[0] = start + offset
            if pausing is not None and index == resume_before:
                resumed_at = now
                resumed = project.run("campaign", "resume", SERIES, "--now", iso(now))
                if resumed.returncode != 0:
                    result.owner_command(f"campaign resume: {resumed.stderr.strip()[-300:]}")
            for action in (booked, erasing):  # the tag first: the erasure may take the same reader
                if action is not None and action.before > 0 and index == action.before:
                    spare = erasing.address if erasing is not None and action is booked else None
                    result.owner_command(act(project, action, standin.messages(), now, spare))
            for arrives, event in feed.due(now):
                post_events(project.app, signer, [event], arrives)
            for message in readers.leaving(leaving, standin.messages(), unsubscribed):
                answer = site.post(readers.unsubscribe_path(message), data={"List-Unsubscribe": "One-Click"})
                if answer.status_code != 200:
                    result.notes.append(f"one-click unsubscribe answered {answer.status_code}")
                    result.misapplied += 1
                unsubscribed[message.to_email] = now
            feed.generated(one_pass(now), now, addresses)
    result.unsubscribed = len(unsubscribed)
    result.booked = booked is not None and booked.address is not None
    for arrives, event in feed.due(start + SETTLE[-1] + timedelta(days=2)):
        post_events(project.app, signer, [event], arrives)
    final = start + SETTLE[-1] + timedelta(minutes=5)
    one_pass(final)

    # 5. The invariants.
    stuck_rows = list_stuck(project.app, final, timedelta(0))
    to_owner = [row["id"] for row in stuck_rows if row["waits_for"] == WAITS_FOR_OUTAGE]
    result.left_to_owner = len(to_owner)
    result.stuck = len(stuck_rows) - result.left_to_owner
    # Left to the owner is right only when SendGrid may have dropped events: an outage that
    # reaches the end of the retry window, or within one retry's spacing of it.
    if result.left_to_owner and outage <= RETRY_WINDOW - RETRY_SPACING:
        result.stuck += result.left_to_owner
        result.notes.append("left to the owner without an outage longer than the retry window")
    erased = {erasing.address} if erasing is not None and erasing.address else set()
    result.misapplied += ledger.misapplied(
        project.app, set(feed.genuine), feed.bounced, set(unsubscribed), erased
    )

    # What a reader's limit held back goes out a week on (no events needed any more).
    for offset in WEEK_LATER:
        one_pass(start + offset)
    messages = standin.messages()
    moments.extend([moments[-1] if moments else start] * (len(messages) - len(moments)))
    by_key = ledger.emails_by_key(project.app)
    versions = ledger.first_email_versions(project.app) if result.published else {}
    received: dict[ledger.Email, list[datetime]] = defaultdict(list)
    for message, moment in zip(messages, moments, strict=True):
        if message.to_email == OWNER:
            continue
        email = by_key.get(message.custom_args.get("delivery_id", ""))
        if email is not None and email[0] == OWNER and message.to_email in erased:
            email = (message.to_email, *email[1:])  # the erased reader's row, anonymous now
        if email is None or email[0] != message.to_email:
            result.misapplied += 1
            result.notes.append("a message that names no email of its recipient")
            continue
        received[email].append(moment)
        if email[1] == SERIES and start < moment < resumed_at:
            result.while_paused += 1
        if email[1:] == (SERIES, 1) and versions:
            version = versions[message.custom_args["delivery_id"]]
            if (NEW_SUBJECT if version > 1 else OLD_SUBJECT) not in message.subject:
                result.stale_copy += 1
        if erasing is not None and email[0] == erasing.address and erasing.gone_by(moment):
            result.after_erasure += 1
        if result.cancelled and email[1] == newsletter_stream(newsletter_id or 0) and moment > start:
            result.after_cancel += 1
        if booked is not None and email[0] == booked.address and email[1] == SERIES:
            result.after_booking += booked.gone_by(moment)
        if email[0] in unsubscribed and moment >= unsubscribed[email[0]]:
            result.unhonoured += 1
    result.duplicates = sum(len(times) - 1 for times in received.values())
    result.over_limit = ledger.over_limit(
        received, project.emails(sorted(weekly)).values(), project.app.config.delivery.max_emails_per_day
    )
    # Lost: due, never sent, and nobody told. An email left to the owner (the provider may
    # or may not have it: its events were dropped) is listed for them, not lost; so is one
    # the provider refused on every attempt ("failed", on the owner's Deliveries page with
    # SendGrid's answer, to retry by hand). The emails of a reader whose own bounce
    # suppressed them are not due any more (the suppressions are checked in ledger.misapplied).
    with transaction(project.app.engine) as session:
        waiting = ledger.emails_of(session, m.Delivery.id.in_(to_owner))
        refused = ledger.emails_of(session, m.Delivery.status == m.DeliveryStatus.FAILED)
        inactive = set(
            session.scalars(
                select(m.Subscriber.email).where(m.Subscriber.status != m.SubscriberStatus.ACTIVE)
            )
        )
        due = {(email, slug, 1) for email, slug in session.execute(ledger.ENROLLED).all()}
        ended = session.scalar(select(m.Newsletter.status).where(m.Newsletter.id == newsletter_id))
    if newsletter_id is not None and not result.cancelled:
        due |= {(address, newsletter_stream(newsletter_id), 1) for address in addresses}
    if booked is not None and booked.address is not None:
        due.discard((booked.address, SERIES, 1))  # the stop tag ended the series for them
    if result.cancelled and ended != m.NewsletterStatus.CANCELLED:
        result.after_cancel += 1
        result.notes.append(f"the cancelled newsletter ended {ended}")
    result.refused = len(refused - received.keys())
    missing = due - received.keys() - waiting - refused
    # Nothing is due to an erased reader either.
    result.lost = sum(1 for email in missing if email[0] not in inactive | erased)
    for address in erased:
        result.erased = True
        # After every late event and pass: nothing holds the erased address any more.
        left = traces(project.app, address)
        result.erased_traces = len(left)
        if left:
            result.notes.append(f"the erased address is still in {', '.join(left)}")
    return result
