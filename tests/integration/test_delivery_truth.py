"""Delivery truth (issue 13): kill -9 in mid-send, then let the provider's events say what went out.

Randomized trials on SQLite and PostgreSQL, several `nurture send-due` processes each,
all killed at a random moment. Posting signed events for exactly what the SendGrid
stand-in received must leave exactly the never-received deliveries stuck; a pass
after SendGrid's retry window (24 h) sends those, once.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.config import load_config
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, open_app
from tests.support.processes import STEP_TIMES, Project, iso
from tests.support.provider_events import delivery_ids, events_for, post_events
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.webserver import WebhookSigner

TRIALS = 20
PEOPLE = 24
SETTINGS: dict[str, object] = {
    "delivery.batch_size": 3,
    "delivery.concurrency": 2,
    "delivery.reconcile_after": "1h",
}


class SignedProject(Project):
    """A project whose processes and in-process app both hold the webhook's public key."""

    def __init__(
        self, tmp_path: Path, database_url: str, standin: SendGridStandIn, signer: WebhookSigner
    ) -> None:
        super().__init__(tmp_path, database_url, standin, **SETTINGS)
        self.env |= signer.environ
        self.app = open_app(load_config(self.config_path, environ=self.env))


def delivery_statuses(project: Project) -> dict[int, str]:
    with transaction(project.app.engine) as session:
        return {row.id: row.status for row in session.execute(select(m.Delivery.id, m.Delivery.status))}


def received_ids(project: Project, standin: SendGridStandIn) -> set[int]:
    keys = delivery_ids(project.app)
    return {keys[message.custom_args["delivery_id"]] for message in standin.messages()}


def unsubmitted(project: Project) -> set[int]:
    with transaction(project.app.engine) as session:
        return set(session.scalars(select(m.Delivery.id).where(m.Delivery.submitted_at.is_(None))))


def run_trial(
    project: Project, standin: SendGridStandIn, signer: WebhookSigner, rng: random.Random, workers: int
) -> None:
    standin.latency = rng.uniform(0.02, 0.08)
    active_subscribers(project.app, PEOPLE, STEP_TIMES[0] - timedelta(hours=1))
    first = STEP_TIMES[0]
    processes = [project.start("send-due", "--now", iso(first)) for _ in range(workers)]
    target = rng.randint(0, 8)
    started = time.monotonic()
    if target == 0:
        time.sleep(rng.uniform(0.2, 1.5))  # start-up, the first claims, or the first requests
    else:
        while (
            standin.request_count < target
            and time.monotonic() - started < 30
            and any(p.poll() is None for p in processes)
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
    for process in processes:
        process.send_signal(signal.SIGKILL)
    for process in processes:
        process.communicate(timeout=30)
    # A request whose body was on the wire when its process died still reaches the
    # provider: let the stand-in finish it, as SendGrid would, before it reports.
    time.sleep(standin.latency + 0.25)

    # The provider reports what it received; the rest stays stuck, and only the rest.
    post_events(project.app, signer, events_for(standin.messages()), first + timedelta(minutes=1))
    statuses = delivery_statuses(project)
    seen = received_ids(project, standin)
    stuck = {delivery_id for delivery_id, status in statuses.items() if status == m.DeliveryStatus.CLAIMED}
    assert stuck == set(statuses) - seen, "exactly the never-received deliveries are stuck"
    assert all(statuses[delivery_id] == m.DeliveryStatus.SENT for delivery_id in seen)

    # Some minutes later: new people arrive, the next pass sends them and what was never
    # claimed, and releases nothing (reconcile_after has not passed).
    active_subscribers(project.app, 2, first + timedelta(minutes=10), prefix="late")
    soon = send_due(project.app, first + timedelta(minutes=15))
    assert soon.reconciled == 0 and soon.stuck == len(stuck)
    post_events(project.app, signer, events_for(standin.messages()), first + timedelta(minutes=16))
    assert {i for i, s in delivery_statuses(project).items() if s == m.DeliveryStatus.CLAIMED} == stuck

    # Past reconcile_after, the claims never handed to SendGrid go back; past its retry
    # window (24 h), with events for emails submitted after them, the silent ones too. Each
    # is sent once.
    never_handed = unsubmitted(project) & stuck
    early = send_due(project.app, first + timedelta(hours=2))
    assert early.reconciled == len(never_handed)
    later = send_due(project.app, first + timedelta(hours=25))
    assert early.reconciled + later.reconciled == len(stuck)
    assert later.stuck == 0
    received = Counter(message.to_email for message in standin.messages())
    assert len(received) == PEOPLE + 2, "everybody got step 1"
    assert set(received.values()) == {1}, "nobody got step 1 twice"
    assert set(delivery_statuses(project).values()) == {m.DeliveryStatus.SENT}


@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill_9_then_events_leave_exactly_the_unreceived_stuck_sqlite(
    tmp_path: Path, standin: SendGridStandIn, seed: int
) -> None:
    signer = WebhookSigner()
    project = SignedProject(tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", standin, signer)
    run_trial(project, standin, signer, random.Random(seed), workers=2)


@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill_9_then_events_leave_exactly_the_unreceived_stuck_postgres(
    tmp_path: Path, postgres_url: str, standin: SendGridStandIn, seed: int
) -> None:
    signer = WebhookSigner()
    project = SignedProject(tmp_path, postgres_url, standin, signer)
    run_trial(project, standin, signer, random.Random(1000 + seed), workers=3)
