"""The SQL of claiming: due rows, and the statements by id list, built once per dialect.

Each builder takes the dialect's IdStatements and is cached under its name there
(`statements.built(name, builder)`), so a pass compiles each statement once.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from nurture.sending.streams import NEWSLETTER_STEP_KEY, REPERMISSION_STREAM
from nurture.store import models as m
from nurture.store.db import insert_on_conflict
from nurture.store.statements import IdStatements

_DELIVERIES = m.Delivery.__table__
ENROLLMENTS = m.Enrollment.__table__
_SUBSCRIBERS = m.Subscriber.__table__
_TAGS = m.SubscriberTag.__table__
_CAMPAIGN_STATES = m.CampaignState.__table__
_NEWSLETTERS = m.Newsletter.__table__
_NEWSLETTER_ZONES = m.NewsletterZone.__table__
_ASKS = m.RepermissionAsk.__table__

# What a claim locks on PostgreSQL (FOR UPDATE ... SKIP LOCKED): the row it claims from and
# the reader's own row, as the newsletter cohort does. A reader's limit is read from their
# committed emails, so two workers must never weigh the same reader at once: the one could
# not see the other's claim until it commits, and both would claim under the limit. With the
# reader locked, the second worker skips them, and a later round sees the first one's claim.
DRIP_LOCK = (ENROLLMENTS, _SUBSCRIBERS)
ASK_LOCK = (_ASKS, _SUBSCRIBERS)

NEWSLETTER_DUE = (
    select(_NEWSLETTERS.c.id)
    .where(
        _NEWSLETTERS.c.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]),
        _NEWSLETTERS.c.first_due_at <= bindparam("now", type_=_NEWSLETTERS.c.first_due_at.type),
    )
    .limit(1)
)

PAUSED_QUERY = select(_CAMPAIGN_STATES.c.campaign).where(_CAMPAIGN_STATES.c.paused.is_(True))

# The pass's instant, shared by every clause of a statement that compares with it.
_NOW = bindparam("now", type_=_SUBSCRIBERS.c.paused_until.type)
# A reader who paused their mail (or whom sunset paused) gets nothing until the pause ends.
NOT_PAUSED = or_(_SUBSCRIBERS.c.paused_until.is_(None), _SUBSCRIBERS.c.paused_until <= _NOW)

# Due enrollments of series not paused, with what claiming and rendering need; LIMIT
# and FOR UPDATE (PostgreSQL) are added per query. A paused series is left out here,
# not only by decide(): a held row is not moved, so it would come back every round.
# As a subquery it costs no statement of its own (each is a wait for the GIL while the
# sender threads work) and is read in the claim's own transaction.
DUE_QUERY = (
    select(
        ENROLLMENTS.c.id,
        ENROLLMENTS.c.subscriber_id,
        ENROLLMENTS.c.campaign,
        ENROLLMENTS.c.next_step,
        _SUBSCRIBERS.c.status,
        _SUBSCRIBERS.c.timezone,
        _SUBSCRIBERS.c.email,
        _SUBSCRIBERS.c.first_name,
        ENROLLMENTS.c.next_step_key,
        ENROLLMENTS.c.version,
        _SUBSCRIBERS.c.frequency,
    )
    .join(_SUBSCRIBERS, _SUBSCRIBERS.c.id == ENROLLMENTS.c.subscriber_id)
    .where(
        ENROLLMENTS.c.status == m.EnrollmentStatus.ACTIVE,
        ENROLLMENTS.c.next_due_at <= _NOW,
        ENROLLMENTS.c.campaign.not_in(PAUSED_QUERY.scalar_subquery()),
        # The reader's choices: series off, or a pause. Their rows stay due and are left
        # as they are, so each series goes on from the same email once they are back.
        _SUBSCRIBERS.c.series_off == false(),
        NOT_PAUSED,
    )
    .order_by(ENROLLMENTS.c.next_due_at, ENROLLMENTS.c.id)
)


def _recent_emails(statements: IdStatements, *, excluding: bool) -> Any:
    """(subscriber id, claimed at) of the emails claimed or sent to the ids in `:ids` since
    `:since` (with `excluding`, other than the deliveries in `:exclude`).

    Looked up by subscriber, never by scanning the recent deliveries: those are this pass's
    own claims too, and a scan per claim round made a pass quadratic in its size. Planner
    statistics never know the pass's claims (they are newer), so each dialect is steered."""
    conditions = [
        statements.unindexed(_DELIVERIES.c.status).in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.SENT]),
        _DELIVERIES.c.claimed_at > bindparam("since", type_=_DELIVERIES.c.claimed_at.type),
    ]
    if excluding:
        conditions.append(_DELIVERIES.c.id.not_in(bindparam("exclude", expanding=True)))
    if statements.dialect_name == "postgresql":
        # One index probe per id, joined from the id array: with the table's statistics
        # from before the pass, `subscriber_id = ANY(:ids)` was planned as a scan of the
        # (status, claimed_at) index over every recent row, even with the status unindexed.
        ids = (
            func.unnest(bindparam("ids", type_=ARRAY(BigInteger())))
            .table_valued("id")
            .render_derived("wanted")
        )
        recent = (
            select(_DELIVERIES.c.claimed_at)
            .where(_DELIVERIES.c.subscriber_id == ids.c.id, *conditions)
            .offset(0)  # a fence: kept a subquery run per id, not flattened into one scan
            .lateral()
        )
        return select(ids.c.id, recent.c.claimed_at).select_from(ids.join(recent, true()))
    return select(_DELIVERIES.c.subscriber_id, _DELIVERIES.c.claimed_at).where(
        statements.in_ids(_DELIVERIES.c.subscriber_id), *conditions
    )


def cap_query(statements: IdStatements) -> Any:
    """The daily limit's: (subscriber id, claimed at) of the ids' emails since `:since`."""
    return _recent_emails(statements, excluding=False)


def recent_query(statements: IdStatements) -> Any:
    """The weekly limit's: the same, other than the deliveries of `:exclude` (the claims being
    sent), for who already had an email in their week."""
    return _recent_emails(statements, excluding=True)


def recheck_query(statements: IdStatements) -> Any:
    """Those of the ids still subscribed, each with any of the `:tags` it carries (NULL if none),
    and their choices as plain values: series off, newsletter off (1/0), paused at `:now` (1/0),
    frequency."""
    tags = _TAGS.c.tag.in_(bindparam("tags", expanding=True))
    return (
        select(
            _SUBSCRIBERS.c.id,
            _TAGS.c.tag,
            case((_SUBSCRIBERS.c.series_off == false(), 0), else_=1),
            case((_SUBSCRIBERS.c.newsletter_off == false(), 0), else_=1),
            case((NOT_PAUSED, 0), else_=1),
            _SUBSCRIBERS.c.frequency,
        )
        .outerjoin(_TAGS, (_TAGS.c.subscriber_id == _SUBSCRIBERS.c.id) & tags)
        .where(statements.in_ids(_SUBSCRIBERS.c.id), _SUBSCRIBERS.c.status == m.SubscriberStatus.ACTIVE)
    )


def tagged_query(statements: IdStatements) -> Any:
    return select(_TAGS.c.subscriber_id, _TAGS.c.tag).where(
        statements.in_ids(_TAGS.c.subscriber_id), _TAGS.c.tag.in_(bindparam("tags", expanding=True))
    )


CLAIMED = (
    _DELIVERIES.c.id,
    _DELIVERIES.c.subscriber_id,
    _DELIVERIES.c.stream,
    _DELIVERIES.c.step,
    _DELIVERIES.c.step_key,
    _DELIVERIES.c.series_version,
    _DELIVERIES.c.message_key,
)
# The claims one INSERT made, read back by id: see Claimer._insert_claims.
CLAIMED_SINCE = (
    select(*CLAIMED).where(_DELIVERIES.c.id > bindparam("since", type_=Integer())).order_by(_DELIVERIES.c.id)
)
LAST_DELIVERY = select(func.max(_DELIVERIES.c.id))


def new_key_prefix() -> str:
    """A fresh random prefix for one claim INSERT's message keys (a letter first: never all digits,
    so never mistaken for the numeric id that rows claimed before the keys existed are known by)."""
    return f"k{secrets.token_hex(8)}-"


def _message_key(source_id: Any) -> Any:
    """Each new row's message key: the statement's random prefix and the id of the row it is
    claimed from (distinct within one INSERT), so unique without a random value per row."""
    return bindparam("key_prefix", type_=String()) + cast(source_id, String())


def _insert_claims(statements: IdStatements, source: Any, columns: list[str], returning: bool) -> Any:
    statement = (
        insert_on_conflict(_DELIVERIES, statements.dialect_name)
        .from_select(columns, source)
        .on_conflict_do_nothing(index_elements=["subscriber_id", "stream", "step_key"])
    )
    # Without RETURNING on SQLite: the new rows are read back in one step (Claimer._insert_claims).
    return statement.returning(*CLAIMED) if returning else statement


def drip_claims(statements: IdStatements, returning: bool = True) -> Any:
    """INSERT ... SELECT of the current step of enrollments (its key, from its version), by enrollment id."""
    e = ENROLLMENTS
    claimed_at = bindparam("claimed_at", type_=_DELIVERIES.c.claimed_at.type)
    worker = bindparam("worker", type_=String())
    source = (
        select(
            e.c.subscriber_id,
            e.c.campaign,
            e.c.next_step,
            e.c.next_step_key,
            e.c.version,
            literal(m.DeliveryStatus.CLAIMED, String()),
            worker,
            claimed_at,
            _message_key(e.c.id),
        )
        .where(statements.in_ids(e.c.id))
        .order_by(e.c.next_due_at, e.c.id)
    )
    columns = [
        "subscriber_id",
        "stream",
        "step",
        "step_key",
        "series_version",
        "status",
        "worker",
        "claimed_at",
        "message_key",
    ]
    return _insert_claims(statements, source, columns, returning)


def newsletter_claims(statements: IdStatements, returning: bool = True) -> Any:
    """INSERT ... SELECT of one newsletter for subscribers, by subscriber id."""
    sub = _SUBSCRIBERS
    source = (
        select(
            sub.c.id,
            bindparam("stream", type_=String()),
            literal(1, Integer()),
            literal(NEWSLETTER_STEP_KEY, String()),
            bindparam("newsletter_id", type_=Integer()),
            literal(m.DeliveryStatus.CLAIMED, String()),
            bindparam("worker", type_=String()),
            bindparam("claimed_at", type_=_DELIVERIES.c.claimed_at.type),
            _message_key(sub.c.id),
        )
        .where(statements.in_ids(sub.c.id))
        .order_by(sub.c.id)
    )
    columns = [
        "subscriber_id",
        "stream",
        "step",
        "step_key",
        "newsletter_id",
        "status",
        "worker",
        "claimed_at",
        "message_key",
    ]
    return _insert_claims(statements, source, columns, returning)


# ---------------------------------------------------------------- newsletters, one zone at a time


def _active_zones() -> Any:
    """The distinct timezone values of active subscribers, one index seek per zone.

    A recursive "loose index scan" on ix_subscribers_status_timezone_id: each step asks
    for the first value after the previous one, so the cost grows with the number of
    zones (a handful), not of subscribers. NULL (no zone given) is asked separately.
    """
    sub = _SUBSCRIBERS
    active = sub.c.status == m.SubscriberStatus.ACTIVE
    first = (
        select(sub.c.timezone).where(active, sub.c.timezone.is_not(None)).order_by(sub.c.timezone).limit(1)
    )
    zones = select(first.scalar_subquery().label("zone")).cte("zones", recursive=True)
    following = (
        select(sub.c.timezone).where(active, sub.c.timezone > zones.c.zone).order_by(sub.c.timezone).limit(1)
    )
    zones = zones.union_all(select(following.scalar_subquery()).where(zones.c.zone.is_not(None)))
    return select(zones.c.zone).where(zones.c.zone.is_not(None))


ACTIVE_ZONES = _active_zones()
ANYONE_WITHOUT_ZONE = (
    select(_SUBSCRIBERS.c.id)
    .where(_SUBSCRIBERS.c.status == m.SubscriberStatus.ACTIVE, _SUBSCRIBERS.c.timezone.is_(None))
    .limit(1)
)
FINISHED_ZONES = select(_NEWSLETTER_ZONES.c.newsletter_id, _NEWSLETTER_ZONES.c.timezone).where(
    _NEWSLETTER_ZONES.c.newsletter_id.in_(bindparam("newsletter_ids", expanding=True))
)


@lru_cache(maxsize=16)
def newsletter_cohort(*, no_zone: bool, segment: bool, lock: bool) -> Any:
    """Active, confirmed subscribers of one zone (`:zone`, or none given) after id `:after`
    with no delivery of `:stream`, in id order, at most `:room`; tagged `:tag` for a segment;
    leaving out readers who turned newsletters off or paused their mail.

    Reads ix_subscribers_status_timezone_id from (status, zone, after) onwards, with one
    lookup in the deliveries' unique key per subscriber. `lock`: FOR UPDATE SKIP LOCKED
    on PostgreSQL, so two workers read different subscribers (the unique key still decides).
    """
    sub = _SUBSCRIBERS
    query = (
        select(sub.c.id, sub.c.email, sub.c.first_name, sub.c.frequency)
        .where(
            sub.c.status == m.SubscriberStatus.ACTIVE,
            sub.c.newsletter_off == false(),  # the reader turned newsletters off
            NOT_PAUSED,  # a newsletter sent during a pause is skipped, not kept for later
            sub.c.timezone.is_(None) if no_zone else sub.c.timezone == bindparam("zone", type_=String()),
            sub.c.id > bindparam("after", type_=Integer()),
            sub.c.confirmed_at <= _NOW,
            ~exists().where(
                _DELIVERIES.c.subscriber_id == sub.c.id,
                _DELIVERIES.c.stream == bindparam("stream", type_=String()),
            ),
        )
        .order_by(sub.c.id)
        .limit(bindparam("room", type_=Integer()))
    )
    if segment:
        query = query.where(
            exists().where(_TAGS.c.subscriber_id == sub.c.id, _TAGS.c.tag == bindparam("tag", type_=String()))
        )
    if lock:
        query = query.with_for_update(of=sub, skip_locked=True)
    return query


def finish_zone(statements: IdStatements) -> Any:
    """Remember that a newsletter has reached everyone in a zone (once, whoever writes it first)."""
    return insert_on_conflict(_NEWSLETTER_ZONES, statements.dialect_name).on_conflict_do_nothing(
        index_elements=["newsletter_id", "timezone"]
    )


def received_query(statements: IdStatements) -> Any:
    """Every step key of the given series each subscriber already has a delivery of (any status)."""
    return select(_DELIVERIES.c.subscriber_id, _DELIVERIES.c.stream, _DELIVERIES.c.step_key).where(
        statements.in_ids(_DELIVERIES.c.subscriber_id),
        _DELIVERIES.c.stream.in_(bindparam("streams", expanding=True)),
    )


# ---------------------------------------------------------------- re-permission emails


def _ask_key() -> Any:
    """An ask's step key in SQL: "ask-" and its round (nurture.sending.streams.ask_step_key)."""
    return literal("ask-", String()) + cast(_ASKS.c.round, String())


# Open asks whose email has no delivery yet, for active, unpaused readers, oldest first.
ASKS_DUE = (
    select(
        _ASKS.c.id,
        _ASKS.c.subscriber_id,
        _SUBSCRIBERS.c.timezone,
        _SUBSCRIBERS.c.email,
        _SUBSCRIBERS.c.first_name,
        _SUBSCRIBERS.c.frequency,
    )
    .join(_SUBSCRIBERS, _SUBSCRIBERS.c.id == _ASKS.c.subscriber_id)
    .where(
        _ASKS.c.outcome.is_(None),
        _SUBSCRIBERS.c.status == m.SubscriberStatus.ACTIVE,
        NOT_PAUSED,
        ~exists().where(
            _DELIVERIES.c.subscriber_id == _ASKS.c.subscriber_id,
            _DELIVERIES.c.stream == REPERMISSION_STREAM,
            _DELIVERIES.c.step_key == _ask_key(),
        ),
    )
    .order_by(_ASKS.c.id)
)


def ask_claims(statements: IdStatements, returning: bool = True) -> Any:
    """INSERT ... SELECT of the re-permission email of asks, by ask id."""
    source = (
        select(
            _ASKS.c.subscriber_id,
            literal(REPERMISSION_STREAM, String()),
            _ASKS.c.round,
            _ask_key(),
            literal(m.DeliveryStatus.CLAIMED, String()),
            bindparam("worker", type_=String()),
            bindparam("claimed_at", type_=_DELIVERIES.c.claimed_at.type),
            _message_key(_ASKS.c.id),
        )
        .where(statements.in_ids(_ASKS.c.id))
        .order_by(_ASKS.c.id)
    )
    columns = ["subscriber_id", "stream", "step", "step_key", "status", "worker", "claimed_at", "message_key"]
    return _insert_claims(statements, source, columns, returning)
