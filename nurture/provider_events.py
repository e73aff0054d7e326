"""Provider events, whoever the provider: store each once, tie to deliveries, suppress.

A provider's own module (for SendGrid, `nurture.providers.sendgrid.event_webhook`) checks
the request and turns each of its events into a `NormalizedEvent`; from there on
nothing here knows which provider sent it:

- `store_events` stores a batch in one transaction, once per provider event id
  (providers retry, so the same event arrives again), ties each event to its
  delivery when the delivery still exists, and suppresses the subscriber on a
  bounce, a spam complaint or an unsubscribe, seen for the first time.
- Any event naming a claimed delivery whose outcome is unknown settles it at once
  (`nurture.sending.deliveries.settle_from_events`): the provider saw that email.
  An event that overtakes its claim's outcome stays stored and settles it when the
  pass records the outcome as unknown.
- The stored `kind`s are `EventKind`s; the stats code reads them.

Email addresses are used only to find a subscriber when an event carries no
delivery id; they are never stored or logged. Free text meant for the store or a
log goes through `nurture.redaction.scrub` first.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.app import App
from nurture.audience.consent import suppress
from nurture.audience.soft_bounces import SOFT_BOUNCE_KINDS, suppress_repeated_soft_bounces
from nurture.errors import InputError, MalformedEvent
from nurture.providers.base import NormalizedEvent
from nurture.sending.deliveries import settle_from_events
from nurture.store import models as m
from nurture.store.db import chunks, insert_rows, reading, rows_busy, transaction
from nurture.store.models import ConsentKind, EventKind
from nurture.store.statements import statements_for
from nurture.store.summaries import add_event_bits, mark_days_dirty

log = logging.getLogger(__name__)

_CHUNK = 500
_LOCK_ATTEMPTS = 50  # about 8 s of retrying before the provider is told to post again later

# Reading behaviour: tied to a delivery (so to a person) only under `delivery.tracking: per_person`;
# otherwise stored with the email's stream and step only, as per-email totals that name no one.
_READING_KINDS = frozenset({EventKind.OPENED, EventKind.CLICKED})

# When one batch carries several suppressing events for one person, the strongest wins.
_SUPPRESS_ORDER = (ConsentKind.COMPLAINT, ConsentKind.BOUNCE, ConsentKind.UNSUBSCRIBE)


@dataclass
class WebhookReport:
    """What one webhook batch did; `kinds` counts the newly stored events by kind."""

    provider: str
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    suppressed: int = 0
    settled: int = 0  # stuck deliveries whose outcome these events settled
    mismatched: int = 0  # named a delivery, but not its recipient's address: changed nothing
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "suppressed": self.suppressed,
        }

    def line(self) -> str:
        return (
            f"{self.provider} webhook: {self.received} received, "
            f"{self.stored} stored, {self.duplicates} duplicate, "
            f"{self.malformed} malformed, {self.suppressed} suppressed"
        )


def receive(
    app: App,
    provider: str,
    raw_events: Sequence[Any],
    normalize: Callable[[Any], NormalizedEvent],
    now: datetime,
) -> WebhookReport:
    """Normalize a parsed batch with the provider's `normalize` and store it.

    An event `normalize` cannot use (MalformedEvent, or anything it trips on: it reads
    one event and touches nothing else) is counted and skipped; the others are stored."""
    report = WebhookReport(provider, received=len(raw_events))
    normalized: list[NormalizedEvent] = []
    for index, event in enumerate(raw_events):
        try:
            normalized.append(normalize(event))
        except MalformedEvent as exc:
            report.malformed += 1
            log.warning("%s webhook: event %d of %d skipped: %s", provider, index + 1, len(raw_events), exc)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            report.malformed += 1
            log.warning(
                "%s webhook: event %d of %d skipped (%s)",
                provider,
                index + 1,
                len(raw_events),
                type(exc).__name__,
            )
    return store_events(app, report, normalized, now)


def store_events(
    app: App, report: WebhookReport, events: Sequence[NormalizedEvent], now: datetime
) -> WebhookReport:
    """Store a batch (one transaction) and suppress whom it says to; adds the counts to `report`.

    On PostgreSQL the transaction is tried again, for a few seconds, while another writer
    (a pass) holds rows of the emails it names (`_lock_named`); then the error is raised,
    and the provider, answered 5xx, posts the batch again later."""
    batch: dict[str, NormalizedEvent] = {}
    for event in events:
        if event.provider_event_id in batch:
            report.duplicates += 1
        else:
            batch[event.provider_event_id] = event
    if not batch:
        return report

    items = list(batch.values())
    for attempt in range(1, _LOCK_ATTEMPTS + 1):
        trial = copy.deepcopy(report)
        try:
            with transaction(app.engine) as session:
                _store_batch(session, app, trial, items, now)
        except OperationalError as exc:
            if not rows_busy(exc) or attempt == _LOCK_ATTEMPTS:
                raise
            time.sleep(min(0.01 * attempt, 0.2))  # a pass's write holds its rows for some ms
            continue
        report.__dict__.update(trial.__dict__)
        break
    return report


def _store_batch(
    session: Session, app: App, report: WebhookReport, items: Sequence[NormalizedEvent], now: datetime
) -> None:
    """`store_events`' work, in its transaction; adds the counts to `report`."""
    found = find_deliveries(session, [item.delivery_ref for item in items if item.delivery_ref])
    _lock_named(session, sorted({named.id for named in found.values()}))
    # An event names its delivery by key; it is applied to it only when the address it
    # carries (if any) is that delivery's recipient's. Otherwise it changes nothing.
    mismatched = {
        item.provider_event_id
        for item in items
        if item.delivery_ref in found
        and item.email
        and (key := found[item.delivery_ref].email_key) is not None
        and not _is_address(item.email, key)
    }
    refs = {
        item.delivery_ref: found[item.delivery_ref].id
        for item in items
        if item.delivery_ref in found and item.provider_event_id not in mismatched
    }
    owners: dict[int, int | None] = {found[ref].id: found[ref].subscriber_id for ref in refs if ref}
    emails: dict[str, tuple[str, int]] = {ref: (found[ref].stream, found[ref].step) for ref in refs if ref}
    # When each named delivery was claimed: a late event reopens that day of Results.
    sent_at = {found[ref].id: found[ref].claimed_at for ref in refs if ref}
    per_person = app.config.delivery.tracking == "per_person"

    def delivery_of(item: NormalizedEvent) -> int | None:
        if item.provider_event_id in mismatched:
            return None
        if item.delivery_ref not in refs or (item.kind in _READING_KINDS and not per_person):
            return None
        return refs[item.delivery_ref]

    rows = [
        {
            "provider": report.provider,
            "provider_event_id": item.provider_event_id,
            "kind": item.kind,
            "raw_event": item.raw_event,
            "delivery_id": delivery_of(item),
            "stream": emails[item.delivery_ref][0] if item.delivery_ref in emails else item.stream,
            "step": emails[item.delivery_ref][1] if item.delivery_ref in emails else item.step,
            "occurred_at": item.occurred_at,
            "received_at": now,
            "detail": item.detail,
            "address_mismatch": True if item.provider_event_id in mismatched else None,
        }
        for item in items
    ]
    table = m.ProviderEvent.__table__
    stored = {
        row.provider_event_id
        for row in insert_rows(
            session,
            table,
            rows,
            returning=[table.c.provider_event_id],
            skip_conflicts_on=["provider_event_id"],
        )
    }
    report.stored = len(stored)
    # The Results count these bits, not the events (a year of events is millions of rows).
    add_event_bits(
        session,
        (
            (delivery_id, str(item.kind))
            for item in items
            if item.provider_event_id in stored and (delivery_id := delivery_of(item)) is not None
        ),
    )
    report.duplicates += len(items) - len(stored)
    for item in items:
        if item.provider_event_id in stored:
            report.kinds[item.kind] = report.kinds.get(item.kind, 0) + 1

    # Suppress only on events seen for the first time: a retried duplicate must not
    # undo a later, deliberate re-subscription.
    fresh = [
        item
        for item in items
        if item.suppress and item.provider_event_id in stored and item.provider_event_id not in mismatched
    ]
    report.suppressed = _suppress(session, report.provider, fresh, refs, owners, now)
    soft = {
        owner
        for item in items
        if item.kind in SOFT_BOUNCE_KINDS
        and item.provider_event_id in stored
        and item.delivery_ref in refs
        and (owner := owners.get(refs[item.delivery_ref])) is not None
    }
    report.suppressed += suppress_repeated_soft_bounces(
        session, soft, app.config.bounces, now, source=f"{report.provider} webhook"
    )
    for item in items:
        if item.provider_event_id in mismatched and item.provider_event_id in stored:
            report.mismatched += 1
            log.warning(
                "%s webhook: event %s names delivery %d but another address than its recipient's: "
                "changed nothing",
                report.provider,
                item.raw_event,
                found[item.delivery_ref].id if item.delivery_ref else 0,
            )
    named = sorted({refs[item.delivery_ref] for item in items if item.delivery_ref in refs})
    report.settled = settle_from_events(session, named, now) if named else 0
    # A late event changes its email's numbers: a summarized day of Results is read live again.
    mark_days_dirty(session, (sent_at[delivery_id] for delivery_id in named if delivery_id in sent_at))


def _lock_named(session: Session, delivery_ids: Sequence[int]) -> None:
    """On PostgreSQL, lock the named emails' rows first, all at once, or fail at once (NOWAIT).

    A pass writes the same rows (an email is handed over, then marked sent) while events
    about it arrive. Updating them in several statements, a batch held some rows while
    waiting for others that a pass held, and the pass could wait for the batch's in turn:
    PostgreSQL broke the deadlock by ending one of them, the pass included
    (benchmarks/bench_webhook_during_pass.py). Not waiting while holding, a batch cannot
    close such a circle; `store_events` tries again shortly. SQLite has one writer at a time."""
    statements = statements_for(session.connection())
    if not delivery_ids or statements.dialect_name != "postgresql":
        return
    query = (
        select(m.Delivery.id)
        .where(statements.in_ids(m.Delivery.id))
        .order_by(m.Delivery.id)
        .with_for_update(nowait=True)
    )
    session.execute(query, {"ids": list(delivery_ids)})


@dataclass(frozen=True)
class Named:
    """A delivery an event's key names, and its recipient's address key (None: forgotten)."""

    id: int
    subscriber_id: int | None
    stream: str
    step: int
    email_key: str | None
    claimed_at: datetime


def find_deliveries(session: Session, refs: Sequence[str | None]) -> dict[str | None, Named]:
    """The deliveries these event refs name: by message key, or, for a plain number, the row of
    that id claimed before message keys existed (a keyed row is never named by its id: ids can
    be reused, keys are not)."""
    texts = {str(ref) for ref in refs if ref}  # (an int from a caller that predates keys: its row id)
    keys = sorted(ref for ref in texts if not ref.isdigit())
    numbers = sorted(int(ref) for ref in texts if ref.isdigit())
    columns = (
        m.Delivery.id,
        m.Delivery.subscriber_id,
        m.Delivery.stream,
        m.Delivery.step,
        m.Subscriber.email_key,
        m.Delivery.message_key,
        m.Delivery.claimed_at,
    )
    found: dict[str | None, Named] = {}
    conditions: list[Any] = [m.Delivery.message_key.in_(chunk) for chunk in chunks(keys, _CHUNK)] + [
        and_(m.Delivery.id.in_(chunk), m.Delivery.message_key.is_(None)) for chunk in chunks(numbers, _CHUNK)
    ]
    for condition in conditions:
        query = (
            select(*columns)
            .outerjoin(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(condition)
        )
        for row in session.execute(query):
            ref = row.message_key or str(row.id)
            found[ref] = Named(row.id, row.subscriber_id, row.stream, row.step, row.email_key, row.claimed_at)
    return found


def count_mismatched(app: App) -> int:
    """Events that named a delivery with another address than its recipient's (the deliveries page)."""
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(m.ProviderEvent)
                .where(m.ProviderEvent.address_mismatch.is_(True))
            )
            or 0
        )


def _is_address(address: str, email_key: str) -> bool:
    """Whether an event's address is the one whose key this is."""
    # Events carry the address as it was sent, so it nearly always equals the key once
    # case-folded; validating each took 75 ms of a 1,000-event batch (RESULTS.md).
    return address.strip().casefold() == email_key or _email_key(address) == email_key


def _email_key(address: str) -> str | None:
    try:
        return normalize_email(address)[1]
    except InputError:
        return None


def _suppress(
    session: Session,
    provider: str,
    items: Sequence[NormalizedEvent],
    refs: Mapping[str | None, int],
    owners: Mapping[int, int | None],
    now: datetime,
) -> int:
    if not items:
        return 0
    by_subscriber: dict[int, NormalizedEvent] = {}
    by_key: dict[str, list[NormalizedEvent]] = {}
    for item in items:
        delivery = refs.get(item.delivery_ref)
        owner = owners.get(delivery) if delivery is not None else None
        if owner is not None:
            _keep_strongest(by_subscriber, owner, item)
        elif item.email:
            key = _email_key(item.email)
            if key:
                by_key.setdefault(key, []).append(item)
    keys = list(by_key)
    for chunk in chunks(keys, _CHUNK):
        for subscriber_id, email_key in session.execute(
            select(m.Subscriber.id, m.Subscriber.email_key).where(m.Subscriber.email_key.in_(chunk))
        ):
            for item in by_key[email_key]:
                _keep_strongest(by_subscriber, subscriber_id, item)

    groups: dict[tuple[str, str], list[int]] = {}
    for subscriber_id, item in by_subscriber.items():
        assert item.suppress is not None
        groups.setdefault((item.suppress, item.raw_event), []).append(subscriber_id)
    changed = 0
    for kind in _SUPPRESS_ORDER:
        for (group_kind, raw_event), ids in sorted(groups.items()):
            if group_kind == kind:
                changed += suppress(
                    session,
                    ids,
                    kind,
                    now,
                    source=f"{provider} webhook",
                    detail=f"{provider} event: {raw_event}",
                )
    return changed


def _keep_strongest(chosen: dict[int, NormalizedEvent], subscriber_id: int, item: NormalizedEvent) -> None:
    current = chosen.get(subscriber_id)
    if current is None or _SUPPRESS_ORDER.index(item.suppress) < _SUPPRESS_ORDER.index(current.suppress):
        chosen[subscriber_id] = item
