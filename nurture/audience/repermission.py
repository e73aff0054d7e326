"""Re-permission of quiet readers, instead of sunsetting them by tracking (`sunset:` settings).

A reader is quiet when, for `sunset.quiet_for`, nurture has had no sign of life from
them while at least `sunset.min_emails` emails went to them. Signs of life are
explicit ones only: confirming or joining, a visit to or a change in the preference
center, a "keep me on the list", a tag in `sunset.life_tags` ("booked" from the booking
webhook, "replied" set by the owner), and a click where `delivery.tracking: per_person`
ties clicks to people (with tracking off or aggregate, clicks name no one and never count).

Once a day (practice time) the sending pass runs `review`:

1. Open asks whose email went out `sunset.answer_within` ago are closed: kept when a
   sign of life came after the email, else paused until the reader returns, or
   unsubscribed with reason "sunset" (`sunset.then`). Either is a consent record.
2. Each quiet reader without an open ask gets one: the pass then sends the
   re-permission email, a delivery of stream REPERMISSION_STREAM with step key
   `ask-<round>`, so each round's email goes out at most once, like any email.

A paused reader (by themselves or by sunset) is never asked and never counted as lost:
they stay subscribed, and the preference center or the "keep" link starts their mail again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.audience.consent import record_consent, suppress
from nurture.config import Config
from nurture.sending.planning import local_date, zone
from nurture.sending.streams import REPERMISSION_STREAM, ask_step_key
from nurture.store import models as m
from nurture.store.db import chunks, reading, transaction

# A pause with no end: sunset's, lifted only by the reader (the preference center, "keep").
UNTIL_THEY_RETURN = datetime(9999, 12, 31, tzinfo=UTC)
SUNSET_SOURCE = "sunset"
KEEP_SOURCE = "re-permission email"

# Consent records that are the reader's own doing, so a sign of life.
_LIFE_KINDS = (
    m.ConsentKind.OPT_IN,
    m.ConsentKind.CONFIRM,
    m.ConsentKind.IMPORT,
    m.ConsentKind.PREFERENCE,
    m.ConsentKind.RECONFIRM,
    m.ConsentKind.BOOKED,
)


def paused_by_sunset(paused_until: datetime | None) -> bool:
    return paused_until is not None and paused_until >= UNTIL_THEY_RETURN


def _paused(now: datetime) -> Any:
    """A reader whose mail is paused at `now`."""
    return and_(m.Subscriber.paused_until.is_not(None), m.Subscriber.paused_until > now)


# ---------------------------------------------------------------- signs of life


def last_signs_of_life(
    session: Session, config: Config, subscriber_ids: Sequence[int]
) -> dict[int, datetime]:
    """The latest sign of life of each subscriber (joining counts as one)."""
    latest: dict[int, datetime] = {}

    def note(subscriber_id: int, moment: datetime | None) -> None:
        if moment is not None and (subscriber_id not in latest or moment > latest[subscriber_id]):
            latest[subscriber_id] = moment

    for chunk in chunks(list(subscriber_ids), 500):
        for row in session.execute(
            select(
                m.Subscriber.id,
                m.Subscriber.created_at,
                m.Subscriber.confirmed_at,
                m.Subscriber.preferences_seen_at,
            ).where(m.Subscriber.id.in_(chunk))
        ):
            note(row.id, row.created_at)
            note(row.id, row.confirmed_at)
            note(row.id, row.preferences_seen_at)
        queries = [
            select(m.ConsentEvent.subscriber_id, func.max(m.ConsentEvent.occurred_at))
            .where(m.ConsentEvent.subscriber_id.in_(chunk), m.ConsentEvent.kind.in_(list(_LIFE_KINDS)))
            .group_by(m.ConsentEvent.subscriber_id),
            # Under tracking off or aggregate, no click is tied to a delivery: none counts.
            select(m.Delivery.subscriber_id, func.max(m.ProviderEvent.occurred_at))
            .join(m.ProviderEvent, m.ProviderEvent.delivery_id == m.Delivery.id)
            .where(m.Delivery.subscriber_id.in_(chunk), m.ProviderEvent.kind == m.EventKind.CLICKED)
            .group_by(m.Delivery.subscriber_id),
        ]
        if config.sunset.life_tags:
            queries.append(
                select(m.SubscriberTag.subscriber_id, func.max(m.SubscriberTag.created_at))
                .where(
                    m.SubscriberTag.subscriber_id.in_(chunk),
                    m.SubscriberTag.tag.in_(list(config.sunset.life_tags)),
                )
                .group_by(m.SubscriberTag.subscriber_id)
            )
        for query in queries:
            for subscriber_id, moment in session.execute(query):
                if subscriber_id is not None:
                    note(subscriber_id, moment)
    return latest


# ---------------------------------------------------------------- who is quiet


@dataclass(frozen=True)
class QuietReader:
    subscriber_id: int
    quiet_since: datetime  # their last sign of life
    emails: int  # emails sent to them in the quiet time


def quiet_readers(session: Session, config: Config, now: datetime) -> list[QuietReader]:
    """Active, unpaused readers with no open ask, quiet for `sunset.quiet_for` with enough emails."""
    sunset = config.sunset
    since = now - sunset.quiet_for
    open_ask = exists().where(
        m.RepermissionAsk.subscriber_id == m.Subscriber.id, m.RepermissionAsk.outcome.is_(None)
    )
    # Only people who joined before the quiet time began can have been quiet for all of it.
    candidates = list(
        session.scalars(
            select(m.Subscriber.id)
            .where(
                m.Subscriber.status == m.SubscriberStatus.ACTIVE,
                ~_paused(now),
                ~open_ask,
                func.coalesce(m.Subscriber.confirmed_at, m.Subscriber.created_at) <= since,
            )
            .order_by(m.Subscriber.id)
        )
    )
    if not candidates:
        return []
    emails: dict[int, int] = defaultdict(int)
    for chunk in chunks(candidates, 500):
        for subscriber_id, count in session.execute(
            select(m.Delivery.subscriber_id, func.count())
            .where(
                m.Delivery.subscriber_id.in_(chunk),
                m.Delivery.status == m.DeliveryStatus.SENT,
                m.Delivery.claimed_at >= since,
                m.Delivery.stream != REPERMISSION_STREAM,
            )
            .group_by(m.Delivery.subscriber_id)
        ):
            if subscriber_id is not None:
                emails[subscriber_id] = int(count)
    enough = [subscriber_id for subscriber_id in candidates if emails[subscriber_id] >= sunset.min_emails]
    life = last_signs_of_life(session, config, enough)
    return [
        QuietReader(subscriber_id, life[subscriber_id], emails[subscriber_id])
        for subscriber_id in enough
        if subscriber_id in life and life[subscriber_id] <= since
    ]


# ---------------------------------------------------------------- the daily review


@dataclass
class ReviewReport:
    ran: bool = False  # False: already reviewed today, or sunset is off
    asked: int = 0  # new asks opened (their emails go out with this and the next passes)
    kept: int = 0
    paused: int = 0
    unsubscribed: int = 0
    closed: int = 0  # left by themselves, or the email could not be sent


def review_due(session: Session, config: Config, now: datetime) -> bool:
    day = local_date(now, zone(config.delivery.default_timezone)).isoformat()
    return config.sunset.enabled and session.get(m.SunsetReview, day) is None


def review(session: Session, config: Config, now: datetime) -> ReviewReport:
    """Close the asks whose time is up and open asks for quiet readers, once a practice day.

    Run in a write transaction; a second process reviewing the same day fails on the
    review row's key when it commits, and its work is rolled back (`IntegrityError`)."""
    report = ReviewReport()
    if not review_due(session, config, now):
        return report
    day = local_date(now, zone(config.delivery.default_timezone)).isoformat()
    session.add(m.SunsetReview(day=day, ran_at=now))
    session.flush()
    report.ran = True
    _close_asks(session, config, now, report)
    rounds = dict(
        session.execute(
            select(m.RepermissionAsk.subscriber_id, func.max(m.RepermissionAsk.round)).group_by(
                m.RepermissionAsk.subscriber_id
            )
        ).all()
    )
    for reader in quiet_readers(session, config, now):
        session.add(
            m.RepermissionAsk(
                subscriber_id=reader.subscriber_id,
                round=int(rounds.get(reader.subscriber_id) or 0) + 1,
                created_at=now,
                quiet_since=reader.quiet_since,
            )
        )
        report.asked += 1
    session.flush()
    return report


def daily_review(config: Config) -> Callable[[Engine | Connection, datetime], int] | None:
    """The day's review as a sending pass runs it before claiming (so the asks go out in that
    pass): how many quiet readers it asked. None when sunset is off."""
    if not config.sunset.enabled:
        return None

    def run(bind: Engine | Connection, now: datetime) -> int:
        with reading(bind) as session:
            if not review_due(session, config, now):
                return 0
        with transaction(bind) as session:
            return review_once(session, config, now).asked

    return run


def review_once(session: Session, config: Config, now: datetime) -> ReviewReport:
    """`review` in a savepoint: another process that reviewed today first wins, quietly."""
    try:
        with session.begin_nested():
            return review(session, config, now)
    except IntegrityError:
        return ReviewReport()


def _close_asks(session: Session, config: Config, now: datetime, report: ReviewReport) -> None:
    sunset = config.sunset
    asks = session.scalars(select(m.RepermissionAsk).where(m.RepermissionAsk.outcome.is_(None))).all()
    if not asks:
        return
    ids = [ask.subscriber_id for ask in asks]
    people = {
        row.id: row
        for chunk in chunks(ids, 500)
        for row in session.execute(
            select(m.Subscriber.id, m.Subscriber.status, m.Subscriber.paused_until).where(
                m.Subscriber.id.in_(chunk)
            )
        )
    }
    sent = _ask_deliveries(session, [(ask.subscriber_id, ask.round) for ask in asks])
    life = last_signs_of_life(session, config, ids)
    to_pause: list[m.RepermissionAsk] = []
    to_unsubscribe: list[m.RepermissionAsk] = []
    for ask in asks:
        person = people[ask.subscriber_id]
        delivery = sent.get((ask.subscriber_id, ask.round))
        gone = person.status != m.SubscriberStatus.ACTIVE
        if delivery is None or delivery[0] == m.DeliveryStatus.CLAIMED:
            if gone or (person.paused_until is not None and person.paused_until > now):
                _decide(ask, m.AskOutcome.LEFT, now)
                report.closed += 1
            continue  # not out yet: the pass sends it
        status, sent_at = delivery
        if status != m.DeliveryStatus.SENT:
            _decide(ask, m.AskOutcome.NOT_SENT, now)
            report.closed += 1
        elif life.get(ask.subscriber_id, sent_at) > sent_at:
            _decide(ask, m.AskOutcome.KEPT, now)
            report.kept += 1
        elif gone:
            _decide(ask, m.AskOutcome.LEFT, now)
            report.closed += 1
        elif now >= sent_at + sunset.answer_within:
            (to_pause if sunset.then == "pause" else to_unsubscribe).append(ask)
    for ask in to_pause:
        subscriber = session.get(m.Subscriber, ask.subscriber_id)
        assert subscriber is not None  # the ask cascades with its subscriber
        subscriber.paused_until = UNTIL_THEY_RETURN
        record_consent(
            session,
            subscriber.id,
            m.ConsentKind.SUNSET_PAUSE,
            now,
            source=SUNSET_SOURCE,
            detail=f"no answer to the re-permission email (round {ask.round}): paused until they come back",
        )
        _decide(ask, m.AskOutcome.PAUSED, now)
        report.paused += 1
    if to_unsubscribe:
        suppress(
            session,
            [ask.subscriber_id for ask in to_unsubscribe],
            m.ConsentKind.UNSUBSCRIBE,
            now,
            source=SUNSET_SOURCE,
            detail="sunset: no answer to the re-permission email",
        )
        for ask in to_unsubscribe:
            _decide(ask, m.AskOutcome.UNSUBSCRIBED, now)
        report.unsubscribed += len(to_unsubscribe)


def _decide(ask: m.RepermissionAsk, outcome: m.AskOutcome, now: datetime) -> None:
    ask.outcome = outcome
    ask.decided_at = now


def _ask_deliveries(
    session: Session, asks: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], tuple[str, datetime]]:
    """(subscriber, round) -> (status, when it went out) of each ask's email that has a delivery row."""
    wanted = {(subscriber_id, ask_step_key(number)): number for subscriber_id, number in asks}
    found: dict[tuple[int, int], tuple[str, datetime]] = {}
    for chunk in chunks(sorted({subscriber_id for subscriber_id, _ in wanted}), 500):
        for row in session.execute(
            select(
                m.Delivery.subscriber_id,
                m.Delivery.step_key,
                m.Delivery.status,
                m.Delivery.claimed_at,
                m.Delivery.finished_at,
            ).where(m.Delivery.subscriber_id.in_(chunk), m.Delivery.stream == REPERMISSION_STREAM)
        ):
            number = wanted.get((row.subscriber_id, row.step_key))
            if number is not None:
                found[(row.subscriber_id, number)] = (row.status, row.finished_at or row.claimed_at)
    return found


# ---------------------------------------------------------------- the reader's answer


def keep(session: Session, subscriber_id: int, now: datetime) -> bool:
    """The reader pressed "keep me on the list": close their open ask as kept, and lift a
    sunset pause. Recorded once as a consent record; False when there was nothing to answer."""
    subscriber = session.get(m.Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != m.SubscriberStatus.ACTIVE:
        return False
    asks = session.scalars(
        select(m.RepermissionAsk).where(
            m.RepermissionAsk.subscriber_id == subscriber_id, m.RepermissionAsk.outcome.is_(None)
        )
    ).all()
    resumed = paused_by_sunset(subscriber.paused_until)
    if not asks and not resumed:
        return False
    for ask in asks:
        _decide(ask, m.AskOutcome.KEPT, now)
    if resumed:
        subscriber.paused_until = None
    record_consent(
        session,
        subscriber_id,
        m.ConsentKind.RECONFIRM,
        now,
        source=KEEP_SOURCE,
        detail="keep me on the list" + ("; emails started again after a sunset pause" if resumed else ""),
    )
    return True


def has_open_ask(session: Session, subscriber_id: int) -> bool:
    return (
        session.scalar(
            select(m.RepermissionAsk.id)
            .where(m.RepermissionAsk.subscriber_id == subscriber_id, m.RepermissionAsk.outcome.is_(None))
            .limit(1)
        )
        is not None
    )


# ---------------------------------------------------------------- what the console shows


@dataclass(frozen=True)
class AskView:
    subscriber_id: int
    email: str
    round: int
    quiet_since: datetime
    created_at: datetime
    sent_at: datetime | None
    answer_by: datetime | None
    outcome: str | None
    decided_at: datetime | None


@dataclass
class Overview:
    enabled: bool
    quiet: list[tuple[QuietReader, str]] = field(default_factory=list)  # not asked yet, with their address
    asks: list[AskView] = field(default_factory=list)  # newest first
    counts: dict[str, int] = field(default_factory=dict)  # outcome (or "waiting") -> asks


def overview(session: Session, config: Config, now: datetime, *, limit: int = 200) -> Overview:
    """Who is quiet now (and would be asked at the next review), who was asked, and how it ended."""
    info = Overview(enabled=config.sunset.enabled)
    quiet = quiet_readers(session, config, now)[:limit]
    addresses = _addresses(session, [reader.subscriber_id for reader in quiet])
    info.quiet = [(reader, addresses.get(reader.subscriber_id, "")) for reader in quiet]
    info.counts = {
        outcome or "waiting": int(count)
        for outcome, count in session.execute(
            select(m.RepermissionAsk.outcome, func.count()).group_by(m.RepermissionAsk.outcome)
        )
    }
    rows = session.execute(
        select(m.RepermissionAsk, m.Subscriber.email)
        .join(m.Subscriber, m.Subscriber.id == m.RepermissionAsk.subscriber_id)
        .order_by(m.RepermissionAsk.created_at.desc(), m.RepermissionAsk.id.desc())
        .limit(limit)
    ).all()
    sent = _ask_deliveries(session, [(ask.subscriber_id, ask.round) for ask, _ in rows])
    for ask, email in rows:
        delivery = sent.get((ask.subscriber_id, ask.round))
        sent_at = delivery[1] if delivery is not None and delivery[0] == m.DeliveryStatus.SENT else None
        info.asks.append(
            AskView(
                ask.subscriber_id,
                email,
                ask.round,
                ask.quiet_since,
                ask.created_at,
                sent_at,
                sent_at + config.sunset.answer_within if sent_at is not None else None,
                ask.outcome,
                ask.decided_at,
            )
        )
    return info


def _addresses(session: Session, subscriber_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunks(list(subscriber_ids), 500):
        found.update(
            session.execute(
                select(m.Subscriber.id, m.Subscriber.email).where(m.Subscriber.id.in_(chunk))
            ).all()
        )
    return found


def paused_condition(now: datetime) -> Any:
    """For callers counting readers: paused at `now` (by themselves or by sunset)."""
    return _paused(now)


def not_paused_condition(now: datetime) -> Any:
    return or_(m.Subscriber.paused_until.is_(None), m.Subscriber.paused_until <= now)
