"""A probe: one email to the practice's own address, so that the last stuck claims settle.

Silence releases a stuck delivery only once events have arrived for an email submitted
to the same provider after it (nurture.sending.deliveries). The last claims before a
crash have no such email until the next day's sends: after a pass ends with stuck rows
and nothing was submitted after the newest of them, the pass sends this probe to
`practice.owner_email` (through `one_email.send_now`). Its delivery row carries a
message key like any other, so its events prove the webhook alive *after* the stuck
emails. That proves the webhook works, not that a backlog of retried events is
complete: the stuck rows are still released only once the provider's retry window
since their own request is over (about a day for SendGrid), and settled at once if
their own events come meanwhile.

The probe row is never claimed (nothing may resend it): it is written "sent" or
"failed" with the transport's answer. At most one probe an hour.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from nurture.app import App
from nurture.content.prepared import Recipient
from nurture.errors import NurtureError
from nurture.providers.facts import facts_for
from nurture.sending.claim_statements import new_key_prefix
from nurture.sending.evidence import needs_probe
from nurture.sending.one_email import send_now
from nurture.sending.streams import PROBE_STREAM
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

PROBE_EVERY = timedelta(hours=1)
SUBJECT = "Delivery check from your practice emails (no action needed)"
BODY = (
    "This short email checks that your email provider reports back to nurture. "
    "Some emails had no answer from the provider; when this one's report arrives, "
    "nurture can tell which of them went out. You do not need to do anything."
)


def send_probe(app: App, now: datetime, worker: str, at: datetime | None = None) -> bool:
    """Send a probe if stuck deliveries need one (see above); True when one went out.

    `at`: the moment on the pass's clock (its `now` plus the time it took), after its requests."""
    config = app.config
    owner = config.practice.owner_email
    if not owner or not facts_for(config.delivery.transport).reports_events:
        return False
    with reading(app.engine) as session:
        if not needs_probe(session, config, now):
            return False
        recent = session.scalar(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.stream == PROBE_STREAM, m.Delivery.claimed_at > now - PROBE_EVERY)
        )
    if recent:
        return False
    transport = app.transport
    key = f"{new_key_prefix()}0"
    with transaction(app.engine) as session:
        row = m.Delivery(
            subscriber_id=None,
            stream=PROBE_STREAM,
            step=1,
            step_key=now.isoformat(),
            status=m.DeliveryStatus.FAILED,
            worker=worker[:80],
            claimed_at=now,
            message_key=key,
            provider=transport.name[:20],
            submitted_at=at or now,
            error="probe: no answer yet",
        )
        session.add(row)
        session.flush()
        probe_id = row.id
    prepared = app.renderer.prepare_notice("delivery-probe", SUBJECT, SUBJECT, BODY)
    status, error = m.DeliveryStatus.SENT, None
    try:
        send_now(
            transport,
            prepared,
            Recipient(email=owner, first_name=None),
            kind="probe",
            label="probe",
            what="the delivery probe",
            delivery_key=key,
        )
    except NurtureError as exc:
        status, error = m.DeliveryStatus.FAILED, f"probe: {exc}"
    with transaction(app.engine) as session:
        probe = session.get(m.Delivery, probe_id)
        if probe is not None:
            probe.status, probe.error, probe.finished_at = status, error, now
    log.info("delivery probe %s: %s", probe_id, status)
    return status == m.DeliveryStatus.SENT
