"""A webhook batch finds the emails and people its events name by key, whatever the history.

Its statements also carry a status condition ("still claimed", "still reachable", "still
active") that only sorts out rows already named. Planned through a status index, that
condition walks every email ever sent, or every active reader, for each batch: a batch of
1,000 events took 5x as long after 1,000,000 past emails on SQLite (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from nurture.app import App
from nurture.sending.deliveries import SETTLED_NOTE
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import process_sendgrid_events
from tests.support.factories import at
from tests.support.plans import history_then_a_batch, plans_alongside
from tests.support.webserver import sg_event

NOW = at("2026-12-01 15:00")
STATUS_INDEXES = ("ix_deliveries_status", "ix_subscribers_status", "ix_enrollments_due")


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


def test_a_webhook_batch_reads_and_settles_what_it_names_by_key(app: App) -> None:
    people, batch = history_then_a_batch(app, NOW)
    sent = batch[:500]  # the rest are still claimed
    with transaction(app.engine) as session:
        for number, delivery in enumerate(batch):
            session.execute(
                update(m.Delivery).where(m.Delivery.id == delivery).values(message_key=f"k{number:016x}-1")
            )
        # Half were handed over and settled by an earlier "processed".
        session.execute(
            update(m.Delivery)
            .where(m.Delivery.id.in_(sent))
            .values(status=m.DeliveryStatus.SENT, error=f"{SETTLED_NOTE} processed", finished_at=NOW)
        )

    def event(kind: str, number: int, **fields: str) -> dict[str, object]:
        # batch[number] is people[number]'s email, to person{number}@example.com
        return sg_event(
            kind, number, delivery_id=f"k{number:016x}-1", email=f"person{number}@example.com", **fields
        )

    events = [event("delivered", n) for n in range(0, 400)]  # 400 sent
    events += [event("processed", n) for n in range(500, 900)]  # 400 claimed: settled now
    events += [event("dropped", n, reason="Bounced Address") for n in range(400, 410)]  # after "processed"
    events += [
        event("bounce", n, type="bounce", status="5.1.1", reason="550 unknown") for n in range(900, 910)
    ]
    events += [event("bounce", n, type="blocked", reason="421 try later") for n in range(910, 915)]
    with plans_alongside(app.engine) as seen:
        report = process_sendgrid_events(app, events, NOW)

    assert (report.stored, report.mismatched) == (len(events), 0), report
    # The claimed, the dropped (failed now), the bounced and blocked (the provider took them: sent).
    assert report.settled == 400 + 10 + 10 + 5, report
    assert report.suppressed == 20, report  # the dropped (a bounced address) and the bounced
    with transaction(app.engine) as session:
        statuses = dict(
            session.execute(select(m.Delivery.id, m.Delivery.status).where(m.Delivery.id.in_(batch))).all()
        )
    assert [statuses[batch[n]] for n in (0, 405, 500, 905, 950)] == [
        "sent",
        "failed",
        "sent",
        "sent",
        "claimed",
    ]
    assert len(people) == len(batch)

    touched = [
        (statement, plan)
        for statement, plan in seen
        if any(table in statement for table in ("deliveries", "subscribers", "enrollments"))
    ]
    assert len(touched) >= 6, seen  # the lookup, the event bits, suppressing, settling
    walked = [
        (statement[:120], plan)
        for statement, plan in touched
        if any(index in plan for index in STATUS_INDEXES)
    ]
    assert not walked, walked
