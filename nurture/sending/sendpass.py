"""One sending pass: due -> claim -> render -> transport -> record.

Exactly once rests on three things:
- A delivery row, unique per (subscriber, stream, step), is written and committed
  (the claim) before anything is handed to a transport. A second process that
  wants the same email hits the unique key and moves on.
- A claim whose outcome is unknown (the process died, or the provider did not
  answer) stays "claimed" and is never sent again by itself; it is reported as
  stuck until the owner releases it.
- Claims known not to have gone out (a fatal provider error, a stop signal) are
  released at once, so the next run picks them up.

Consent is checked twice: when claiming, and again right before the transport.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Integer, String, and_, bindparam, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from nurture import links
from nurture.app import App
from nurture.content.campaigns import Campaign
from nurture.errors import FatalTransportError, InputError, NurtureError
from nurture.sending.passlog import record_pass
from nurture.sending.planning import Window, in_window, local_date, next_day_open, next_window_open, zone
from nurture.store import models as m
from nurture.store.db import chunks, reading, transaction
from nurture.providers.base import Batch, Outcome

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Row

STUCK_AFTER = timedelta(minutes=10)
NEWSLETTER_PREFIX = "newsletter:"


def newsletter_stream(newsletter_id: int) -> str:
    return f"{NEWSLETTER_PREFIX}{newsletter_id}"


@dataclass
class PassSummary:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0  # no answer from the provider: left claimed, reported as stuck
    released: int = 0  # claimed, known not sent, given back for the next run
    rescheduled: int = 0  # due but outside the send window or over the daily cap
    stuck: int = 0
    fatal: str | None = None
    by_stream: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def line(self) -> str:
        text = (
            f"sent {self.sent}, failed {self.failed}, skipped {self.skipped}, "
            f"stuck {self.stuck}, waiting for window or cap {self.rescheduled}"
        )
        if self.released:
            text += f", released {self.released} unsent claims"
        if self.stuck:
            text += " (see: nurture deliveries --stuck)"
        return text


@dataclass(frozen=True)
class Claim:
    """One claimed delivery with what rendering needs."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    stream: str
    step: int
    newsletter_id: int | None = None


def worker_name() -> str:
    return f"{socket.gethostname()[:50]}:{os.getpid()}"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# New column values as ((column, value), ...): hashable, so rows getting the same values
# are grouped and updated with one `WHERE id IN (...)` statement.
Values = tuple[tuple[str, Any], ...]

_DELIVERIES = m.Delivery.__table__
_ENROLLMENTS = m.Enrollment.__table__
_SUBSCRIBERS = m.Subscriber.__table__
_TAGS = m.SubscriberTag.__table__
_CAMPAIGN_STATES = m.CampaignState.__table__


def _has_json_each(dbapi: Any) -> bool:
    """Whether this SQLite library has the JSON functions (built in from 3.38, optional before)."""
    try:
        probe = dbapi.connect(":memory:")
        try:
            probe.execute("SELECT value FROM json_each('[1]')").fetchall()
        finally:
            probe.close()
    except Exception:  # noqa: BLE001 - any failure means: use plain IN lists
        return False
    return True


class _Statements:
    """The pass's per-row statements for one dialect, built once and reused.

    They select and update rows by lists of ids. SQLAlchemy expands `IN (:ids)` into one
    bound parameter per id, which costs more than the query itself; on SQLite the list
    goes in as one JSON array instead (`IN (SELECT value FROM json_each(:ids))`, which
    SQLite plans as lookups by key, like a plain IN list).
    """

    def __init__(self, dialect: Any) -> None:
        self.dialect_name = dialect.name
        self.json_ids = dialect.name == "sqlite" and dialect.driver == "pysqlite" and _has_json_each(dialect.dbapi)
        # Longest id list in one statement (old SQLite builds allow 999 parameters).
        self.chunk = 5000 if self.json_ids else 500
        self._updates: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._claims: dict[str, Any] = {}
        self.cap = self._cap_query()
        self.active = select(_SUBSCRIBERS.c.id).where(self.in_ids(_SUBSCRIBERS.c.id), _SUBSCRIBERS.c.status == m.SubscriberStatus.ACTIVE)
        self.tagged = select(_TAGS.c.subscriber_id, _TAGS.c.tag).where(
            self.in_ids(_TAGS.c.subscriber_id), _TAGS.c.tag.in_(bindparam("tags", expanding=True))
        )

    def in_ids(self, column: Any) -> Any:
        """`column IN (:ids)`; bind the list with `ids()`."""
        if self.json_ids:
            values = func.json_each(bindparam("ids", type_=String())).table_valued("value")
            return column.in_(select(values.c.value))
        return column.in_(bindparam("ids", expanding=True))

    def ids(self, ids: Sequence[int]) -> Any:
        return json.dumps(list(ids)) if self.json_ids else list(ids)

    def id_chunks(self, ids: Sequence[int]) -> Iterable[Any]:
        for chunk in chunks(ids, self.chunk):
            yield self.ids(chunk)

    def _cap_query(self) -> Any:
        status: ColumnElement[Any] = _DELIVERIES.c.status
        if self.dialect_name == "sqlite":
            # Look up by subscriber. Without statistics SQLite picks the (status, claimed_at)
            # index and scans every delivery of the last two days for each chunk - this
            # pass's own claims included, which made a pass quadratic in the list size.
            # A unary + is a no-op on the value but keeps the planner off that index.
            status = UnaryExpression(status, operator=operators.custom_op("+"), type_=status.type)
        return select(_DELIVERIES.c.subscriber_id, _DELIVERIES.c.claimed_at).where(
            self.in_ids(_DELIVERIES.c.subscriber_id),
            status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.SENT]),
            _DELIVERIES.c.claimed_at > bindparam("since", type_=_DELIVERIES.c.claimed_at.type),
        )

    def update(self, table: Any, columns: tuple[str, ...]) -> Any:
        key = (table, columns)
        statement = self._updates.get(key)
        if statement is None:
            statement = self._updates[key] = (
                update(table)
                .where(self.in_ids(table.c.id))
                .values({column: bindparam(f"v_{column}", type_=table.c[column].type) for column in columns})
            )
        return statement

    def claim(self, kind: str) -> Any:
        """INSERT ... SELECT of claims for drip enrollments or newsletter subscribers, by id."""
        statement = self._claims.get(kind)
        if statement is not None:
            return statement
        d = _DELIVERIES
        claimed_at = bindparam("claimed_at", type_=d.c.claimed_at.type)
        worker = bindparam("worker", type_=String())
        if kind == "drip":
            e = _ENROLLMENTS
            columns = ["subscriber_id", "stream", "step", "status", "worker", "claimed_at"]
            source = (
                select(e.c.subscriber_id, e.c.campaign, e.c.next_step, literal(m.DeliveryStatus.CLAIMED, String()), worker, claimed_at)
                .where(self.in_ids(e.c.id))
                .order_by(e.c.next_due_at, e.c.id)
            )
        else:
            sub = _SUBSCRIBERS
            columns = ["subscriber_id", "stream", "step", "newsletter_id", "status", "worker", "claimed_at"]
            source = (
                select(
                    sub.c.id,
                    bindparam("stream", type_=String()),
                    literal(1, Integer()),
                    bindparam("newsletter_id", type_=Integer()),
                    literal(m.DeliveryStatus.CLAIMED, String()),
                    worker,
                    claimed_at,
                )
                .where(self.in_ids(sub.c.id))
                .order_by(sub.c.id)
            )
        insert = postgresql.insert if self.dialect_name == "postgresql" else sqlite.insert
        statement = self._claims[kind] = (
            insert(d)
            .from_select(columns, source)
            .on_conflict_do_nothing(index_elements=["subscriber_id", "stream", "step"])
            .returning(d.c.id, d.c.subscriber_id, d.c.stream, d.c.step)
        )
        return statement


_statements: dict[tuple[str, str], _Statements] = {}
_statements_lock = threading.Lock()


def _hot(connection: Any) -> _Statements:
    dialect = connection.dialect
    key = (dialect.name, dialect.driver)
    statements = _statements.get(key)
    if statements is None:
        with _statements_lock:
            statements = _statements.get(key)
            if statements is None:
                statements = _statements[key] = _Statements(dialect)
    return statements


def update_grouped(session: Session, table: Any, groups: dict[Values, list[int]]) -> None:
    """UPDATE rows by id, one `WHERE id IN (...)` statement per set of new values (and chunk).

    The values are bound once per statement, not once per row: most rows of a pass get
    the same ones (same status, same instant, same next window in the same zone).
    """
    if not groups:
        return
    connection = session.connection()
    hot = _hot(connection)
    for values, ids in groups.items():
        statement = hot.update(table, tuple(column for column, _ in values))
        params = {f"v_{column}": value for column, value in values}
        for chunk in hot.id_chunks(ids):
            connection.execute(statement, {**params, "ids": chunk})


_NEWSLETTERS = m.Newsletter.__table__
_NEWSLETTER_DUE = (
    select(_NEWSLETTERS.c.id)
    .where(
        _NEWSLETTERS.c.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]),
        _NEWSLETTERS.c.first_due_at <= bindparam("now", type_=_NEWSLETTERS.c.first_due_at.type),
    )
    .limit(1)
)

_PAUSED_QUERY = select(_CAMPAIGN_STATES.c.campaign).where(_CAMPAIGN_STATES.c.paused.is_(True))

# Due enrollments with what claiming and rendering need; LIMIT, paused campaigns and
# FOR UPDATE (PostgreSQL) are added per query.
_DUE_QUERY = (
    select(
        _ENROLLMENTS.c.id,
        _ENROLLMENTS.c.subscriber_id,
        _ENROLLMENTS.c.campaign,
        _ENROLLMENTS.c.next_step,
        _SUBSCRIBERS.c.status,
        _SUBSCRIBERS.c.timezone,
        _SUBSCRIBERS.c.email,
        _SUBSCRIBERS.c.first_name,
    )
    .join(_SUBSCRIBERS, _SUBSCRIBERS.c.id == _ENROLLMENTS.c.subscriber_id)
    .where(
        _ENROLLMENTS.c.status == m.EnrollmentStatus.ACTIVE,
        _ENROLLMENTS.c.next_due_at <= bindparam("now", type_=_ENROLLMENTS.c.next_due_at.type),
    )
    .order_by(_ENROLLMENTS.c.next_due_at, _ENROLLMENTS.c.id)
)


class DailyCap:
    """How many marketing emails each subscriber got on their own local 'today'."""

    def __init__(self, session: Session, subscriber_zones: dict[int, str], now: datetime, limit: int) -> None:
        self.limit = limit
        self.now = now
        self.zones = subscriber_zones
        self.counts: dict[int, int] = defaultdict(int)
        ids = list(subscriber_zones)
        today: dict[str, Any] = {}  # zone name -> local date of `now` there
        connection = session.connection()
        hot = _hot(connection)
        since = now - timedelta(days=2)
        for chunk in hot.id_chunks(ids):
            for subscriber_id, claimed_at in connection.execute(hot.cap, {"ids": chunk, "since": since}).all():
                zone_name = subscriber_zones[subscriber_id]
                tz = zone(zone_name)
                if zone_name not in today:
                    today[zone_name] = local_date(now, tz)
                if local_date(claimed_at, tz) == today[zone_name]:
                    self.counts[subscriber_id] += 1

    def full(self, subscriber_id: int) -> bool:
        return self.counts[subscriber_id] >= self.limit

    def take(self, subscriber_id: int) -> None:
        self.counts[subscriber_id] += 1


class SendingPass:
    def __init__(
        self,
        app: App,
        now: datetime,
        *,
        limit: int | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
        worker: str | None = None,
    ) -> None:
        self.app = app
        self.config = app.config
        self.now = now
        self.limit = limit
        self.stop = stop or threading.Event()
        self.progress = progress
        self.worker = worker or worker_name()
        self.summary = PassSummary()
        delivery = self.config.delivery
        self.window = Window(delivery.send_window.start, delivery.send_window.end, delivery.weekdays_only)
        self.default_zone = delivery.default_timezone
        self.batch_size = delivery.batch_size
        self.campaigns: dict[str, Campaign] = app.campaigns
        self.claimed_total = 0
        self._newsletter_cursor: dict[int, int] = defaultdict(int)
        self._newsletters_done: set[int] = set()
        self._in_window_cache: dict[str, bool] = {}
        self._values_cache: dict[Any, Values] = {}

    # ------------------------------------------------------------ the pass

    def run(self) -> PassSummary:
        # Everything alive now (modules, SQLAlchemy, templates: most of the heap) lives
        # on after the pass; frozen, the collector stops walking it over and over while a
        # large pass allocates. The pass's own objects are collected as usual.
        gc.freeze()
        started = time.monotonic()
        try:
            summary = self._run()
        finally:
            gc.unfreeze()
        record_pass(self.app, self.now, self.now + timedelta(seconds=time.monotonic() - started), summary)  # for the console
        return summary

    def _run(self) -> PassSummary:
        concurrency = self.config.delivery.concurrency
        in_flight: dict[Future[list[Outcome]], list[Claim]] = {}
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nurture-send") as pool:
            try:
                while not self.stop.is_set() and self.summary.fatal is None:
                    room = self._room()
                    if room == 0:
                        break
                    claims = self._claim(min(room, self.batch_size))
                    if not claims:
                        break
                    for group in self._groups(claims):
                        if self.summary.fatal is not None or self.stop.is_set():
                            self._release(group)
                            continue
                        batch, ready = self._prepare(group)
                        if batch is None:
                            continue
                        while len(in_flight) >= concurrency:
                            self._collect(in_flight, FIRST_COMPLETED)
                        in_flight[pool.submit(self.app.transport.send, batch)] = ready
            finally:
                while in_flight:
                    self._collect(in_flight, None)
        self._finish_newsletters()
        self.summary.stuck = count_stuck(self.app, self.now)
        return self.summary

    def _room(self) -> int:
        if self.limit is None:
            return self.batch_size
        return max(0, self.limit - self.claimed_total)

    def _collect(self, in_flight: dict[Future[list[Outcome]], list[Claim]], mode: str | None) -> None:
        done, _ = wait(list(in_flight), return_when=mode or "ALL_COMPLETED")
        for future in done:
            claims = in_flight.pop(future)
            try:
                outcomes = future.result()
            except FatalTransportError as exc:
                # The provider refused the request itself: nothing in it went out.
                self.summary.fatal = str(exc)
                self._release(claims)
                continue
            except ValueError as exc:
                # The transport refused the batch before sending anything (a bug, not a network fault).
                outcomes = [Outcome(str(claim.delivery_id), "failed", error=f"not sent: {exc}") for claim in claims]
            except Exception as exc:  # noqa: BLE001 - any other failure leaves the outcome unknown
                outcomes = [Outcome(str(claim.delivery_id), "unknown", error=f"{type(exc).__name__}: {exc}") for claim in claims]
            self._record(claims, outcomes)

    # ------------------------------------------------------------ claim

    def _claim(self, room: int) -> list[Claim]:
        claims: list[Claim] = []
        with transaction(self.app.engine) as session:
            claims.extend(self._claim_newsletters(session, room))
            if len(claims) < room:
                claims.extend(self._claim_drip(session, room - len(claims)))
        self.claimed_total += len(claims)
        return claims

    def _zones(self, timezones: dict[int, str | None]) -> dict[int, str]:
        return {subscriber_id: tz or self.default_zone for subscriber_id, tz in timezones.items()}

    def _claim_drip(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        # Loop because a chunk may be all "not yet" (window, cap) and claim nothing.
        connection = session.connection()
        postgres = _is_postgres(session)
        while len(claims) < room:
            paused = set(connection.execute(_PAUSED_QUERY).scalars())
            query = _DUE_QUERY.limit(room - len(claims))
            if paused:
                query = query.where(_ENROLLMENTS.c.campaign.not_in(paused))
            if postgres:
                query = query.with_for_update(of=_ENROLLMENTS, skip_locked=True)
            # Plain tuples: unpacking is much cheaper than attribute access on result rows.
            rows = [tuple(row) for row in connection.execute(query, {"now": now}).all()]
            if not rows:
                break
            zones = self._zones({row[1]: row[5] for row in rows})
            cap = DailyCap(session, zones, now, self.config.delivery.max_emails_per_day)
            stop_tags = self._stop_tags(session, [row[1] for row in rows])
            updates: dict[Values, list[int]] = defaultdict(list)
            wanted: list[int] = []  # enrollment ids to claim, in query order
            pending: dict[tuple[int, str, int], tuple[Any, ...]] = {}
            stopped: Values = (("status", m.EnrollmentStatus.STOPPED), ("updated_at", now))
            completed: Values = (("status", m.EnrollmentStatus.COMPLETED), ("updated_at", now))
            campaigns = self.campaigns
            for row in rows:
                enrollment_id, subscriber_id, slug, next_step, status, _, email, first_name = row
                campaign = campaigns.get(slug)
                if campaign is None or status != m.SubscriberStatus.ACTIVE or subscriber_id in stop_tags.get(slug, ()):
                    # Removed campaign, inactive subscriber, or goal reached: the series ends here.
                    updates[stopped].append(enrollment_id)
                    continue
                if next_step > len(campaign.steps):
                    updates[completed].append(enrollment_id)
                    continue
                zone_name = zones[subscriber_id]
                if not self._in_window(zone_name):
                    updates[self._window_values(zone_name)].append(enrollment_id)
                    self.summary.rescheduled += 1
                    continue
                if cap.full(subscriber_id):
                    updates[self._next_day_values(zone_name)].append(enrollment_id)
                    self.summary.rescheduled += 1
                    continue
                cap.take(subscriber_id)
                pending[(subscriber_id, slug, next_step)] = (email, first_name)
                wanted.append(enrollment_id)
                updates[self._advance(slug, campaign, next_step, zone_name)].append(enrollment_id)
            # Claims first, from the enrollment rows as they are now; then the enrollments move on.
            inserted = self._insert_drip_claims(session, wanted)
            for delivery_id, subscriber_id, stream, step in inserted:
                email, first_name = pending[(subscriber_id, stream, step)]
                claims.append(Claim(delivery_id, subscriber_id, email, first_name, stream, step))
            # Rows that hit the unique key were already sent by someone: just move on.
            update_grouped(session, _ENROLLMENTS, updates)
        return claims

    # Window arithmetic depends only on the zone (and the step's delay), never on the
    # row: computed once per zone within a pass.

    def _in_window(self, zone_name: str) -> bool:
        answer = self._in_window_cache.get(zone_name)
        if answer is None:
            answer = self._in_window_cache[zone_name] = in_window(self.now, zone(zone_name), self.window)
        return answer

    def _window_values(self, zone_name: str) -> Values:
        key = ("window", zone_name)
        values = self._values_cache.get(key)
        if values is None:
            due = next_window_open(self.now, zone(zone_name), self.window)
            values = self._values_cache[key] = (("next_due_at", due), ("updated_at", self.now))
        return values

    def _next_day_values(self, zone_name: str) -> Values:
        key = ("next day", zone_name)
        values = self._values_cache.get(key)
        if values is None:
            due = next_day_open(self.now, zone(zone_name), self.window)
            values = self._values_cache[key] = (("next_due_at", due), ("updated_at", self.now))
        return values

    def _advance(self, slug: str, campaign: Campaign, step: int, zone_name: str) -> Values:
        """The enrollment's new values once `step` is claimed."""
        key = ("advance", slug, id(campaign), step, zone_name)
        values = self._values_cache.get(key)
        if values is None:
            if step >= len(campaign.steps):
                values = (("next_step", step + 1), ("status", m.EnrollmentStatus.COMPLETED), ("next_due_at", None), ("updated_at", self.now))
            else:
                delay = timedelta(days=campaign.step(step + 1).delay_days)
                due = next_window_open(self.now + delay, zone(zone_name), self.window)
                values = (("next_step", step + 1), ("next_due_at", due), ("updated_at", self.now))
            self._values_cache[key] = values
        return values

    def _stop_tags(self, session: Session, subscriber_ids: Sequence[int]) -> dict[str, set[int]]:
        tags_by_campaign = {slug: set(c.stop_on_tags) for slug, c in self.campaigns.items() if c.stop_on_tags}
        wanted_tags = set().union(*tags_by_campaign.values()) if tags_by_campaign else set()
        if not wanted_tags:
            return {}
        ids = list(dict.fromkeys(subscriber_ids))
        connection = session.connection()
        hot = _hot(connection)
        tagged: list[Row[Any, Any]] = []
        for chunk in hot.id_chunks(ids):
            tagged += connection.execute(hot.tagged, {"ids": chunk, "tags": sorted(wanted_tags)}).all()
        result: dict[str, set[int]] = defaultdict(set)
        for subscriber_id, tag in tagged:
            for slug, tags in tags_by_campaign.items():
                if tag in tags:
                    result[slug].add(subscriber_id)
        return result

    def _insert_drip_claims(self, session: Session, enrollment_ids: list[int]) -> list[tuple[int, int, str, int]]:
        """Claim the current step of these enrollments: INSERT ... SELECT, skipping existing ones.

        The values come from the enrollment rows themselves, read in this transaction
        (write-locked on SQLite, row-locked on PostgreSQL), so only ids are sent.
        """
        if not enrollment_ids:
            return []
        connection = session.connection()
        hot = _hot(connection)
        statement = hot.claim("drip")
        result: list[tuple[int, int, str, int]] = []
        for chunk in hot.id_chunks(enrollment_ids):
            params = {"ids": chunk, "worker": self.worker, "claimed_at": self.now}
            result += cast("list[tuple[int, int, str, int]]", [tuple(row) for row in connection.execute(statement, params).all()])
        return result

    def _insert_newsletter_claims(
        self, session: Session, newsletter_id: int, stream: str, subscriber_ids: list[int]
    ) -> list[tuple[int, int, str, int]]:
        if not subscriber_ids:
            return []
        connection = session.connection()
        hot = _hot(connection)
        statement = hot.claim("newsletter")
        result: list[tuple[int, int, str, int]] = []
        for chunk in hot.id_chunks(subscriber_ids):
            params = {"ids": chunk, "stream": stream, "newsletter_id": newsletter_id, "worker": self.worker, "claimed_at": self.now}
            result += cast("list[tuple[int, int, str, int]]", [tuple(row) for row in connection.execute(statement, params).all()])
        return result

    def _claim_newsletters(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        if session.connection().execute(_NEWSLETTER_DUE, {"now": now}).first() is None:
            return claims  # the usual case: a cheap look before loading any newsletter
        newsletters = session.scalars(
            select(m.Newsletter)
            .where(m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]), m.Newsletter.first_due_at <= now)
            .order_by(m.Newsletter.first_due_at, m.Newsletter.id)
        ).all()
        for newsletter in newsletters:
            if len(claims) >= room:
                break
            stream = newsletter_stream(newsletter.id)
            claimed_before = len(claims)
            while len(claims) < room:
                query = (
                    select(m.Subscriber.id, m.Subscriber.email, m.Subscriber.first_name, m.Subscriber.timezone)
                    .where(
                        m.Subscriber.status == m.SubscriberStatus.ACTIVE,
                        m.Subscriber.id > self._newsletter_cursor[newsletter.id],
                        m.Subscriber.confirmed_at <= now,
                        ~exists().where(m.Delivery.subscriber_id == m.Subscriber.id, m.Delivery.stream == stream),
                    )
                    .order_by(m.Subscriber.id)
                    .limit(room - len(claims))
                )
                if newsletter.segment_tag:
                    query = query.where(
                        exists().where(
                            m.SubscriberTag.subscriber_id == m.Subscriber.id, m.SubscriberTag.tag == newsletter.segment_tag
                        )
                    )
                if _is_postgres(session):
                    query = query.with_for_update(of=m.Subscriber, skip_locked=True)
                rows = session.execute(query).all()
                if not rows:
                    self._newsletters_done.add(newsletter.id)
                    break
                self._newsletter_cursor[newsletter.id] = rows[-1].id
                zones = self._zones({row.id: row.timezone for row in rows})
                cap = DailyCap(session, zones, now, self.config.delivery.max_emails_per_day)
                wanted: list[int] = []
                by_id = {}
                verdicts: dict[str, str] = {}  # zone name -> "later", "held" or "due" (the same for everyone there)
                for row in rows:
                    zone_name = zones[row.id]
                    verdict = verdicts.get(zone_name)
                    if verdict is None:
                        due = newsletter_due(newsletter, zone_name)
                        if due > now:
                            verdict = "later"
                        else:
                            tz = zone(zone_name)
                            # Held past its own day (by the daily cap, or no pass ran): wait for the
                            # send window instead of going out at the subscriber's midnight.
                            held = local_date(due, tz) < local_date(now, tz) and not self._in_window(zone_name)
                            verdict = "held" if held else "due"
                        verdicts[zone_name] = verdict
                    if verdict == "later":
                        continue
                    if verdict == "held":
                        self.summary.rescheduled += 1
                        continue
                    if cap.full(row.id):
                        self.summary.rescheduled += 1
                        continue
                    cap.take(row.id)
                    by_id[row.id] = row
                    wanted.append(row.id)
                for delivery_id, subscriber_id, _, _ in self._insert_newsletter_claims(session, newsletter.id, stream, wanted):
                    row = by_id[subscriber_id]
                    claims.append(Claim(delivery_id, subscriber_id, row.email, row.first_name, stream, 1, newsletter.id))
            if newsletter.status == m.NewsletterStatus.SCHEDULED and len(claims) > claimed_before:
                newsletter.status = m.NewsletterStatus.SENDING
                newsletter.updated_at = now
        return claims

    def _finish_newsletters(self) -> None:
        """A newsletter is sent once every zone's moment has passed and nobody is left."""
        if not self._newsletters_done or self.stop.is_set() or self.summary.fatal:
            return
        with transaction(self.app.engine) as session:
            for newsletter in session.scalars(
                select(m.Newsletter).where(m.Newsletter.id.in_(self._newsletters_done), m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]))
            ):
                if newsletter_last_due(newsletter) > self.now:
                    continue
                # Only complete when no eligible subscriber is left without a delivery.
                remaining = session.scalar(
                    select(func.count())
                    .select_from(m.Subscriber)
                    .where(
                        m.Subscriber.status == m.SubscriberStatus.ACTIVE,
                        m.Subscriber.confirmed_at <= self.now,
                        ~exists().where(
                            m.Delivery.subscriber_id == m.Subscriber.id, m.Delivery.stream == newsletter_stream(newsletter.id)
                        ),
                        *(
                            [exists().where(m.SubscriberTag.subscriber_id == m.Subscriber.id, m.SubscriberTag.tag == newsletter.segment_tag)]
                            if newsletter.segment_tag
                            else []
                        ),
                    )
                )
                if not remaining:
                    newsletter.status = m.NewsletterStatus.SENT
                    newsletter.updated_at = self.now

    # ------------------------------------------------------------ render

    def _groups(self, claims: Sequence[Claim]) -> Iterable[list[Claim]]:
        groups: dict[tuple[str, int], list[Claim]] = defaultdict(list)
        for claim in claims:
            groups[(claim.stream, claim.step)].append(claim)
        return groups.values()

    def _prepare(self, group: list[Claim]) -> tuple[Batch | None, list[Claim]]:
        """Check consent (and a series' stop tags) once more, right before sending, then build the batch."""
        ids = [claim.subscriber_id for claim in group]
        active: set[int] = set()
        stopped: set[int] = set()
        with reading(self.app.engine) as session:
            connection = session.connection()
            hot = _hot(connection)
            for chunk in hot.id_chunks(ids):
                active.update(connection.execute(hot.active, {"ids": chunk}).scalars().all())
            if group[0].newsletter_id is None:
                # A goal tag ("booked") added since the claim ends the series now, not after one more email.
                stopped = self._stop_tags(session, ids).get(group[0].stream, set())
        ready = [claim for claim in group if claim.subscriber_id in active and claim.subscriber_id not in stopped]
        gone = [claim for claim in group if claim.subscriber_id not in active]
        if gone:
            self._record(gone, [Outcome(str(c.delivery_id), "failed", error="skipped: no longer subscribed") for c in gone], skipped=True)
        tagged = [claim for claim in group if claim.subscriber_id in active and claim.subscriber_id in stopped]
        if tagged:
            self._record(tagged, [Outcome(str(c.delivery_id), "failed", error="skipped: has a stop tag of this series") for c in tagged], skipped=True)
        if not ready:
            return None, []
        from nurture.content.prepared import Recipient

        prepared = self._prepared(ready[0])
        envelopes = []
        unusable: list[tuple[Claim, str]] = []
        seen: set[str] = set()
        for claim in ready:
            key = claim.email.casefold()
            if key in seen:  # cannot happen with unique addresses; never put one twice in a request
                continue
            seen.add(key)
            recipient = Recipient(
                email=claim.email,
                first_name=claim.first_name,
                unsubscribe_url=links.unsubscribe_url(self.config, claim.subscriber_id, claim.stream),
            )
            custom_args = {"delivery_id": str(claim.delivery_id), "campaign": claim.stream, "step": str(claim.step)}
            try:
                envelopes.append(prepared.envelope(str(claim.delivery_id), recipient, custom_args))
            except NurtureError as exc:
                # One unusable recipient (say, an address that can no longer be written
                # into a header) fails alone; the rest of the batch still goes out.
                unusable.append((claim, f"not sent: {exc}"))
        if unusable:
            failed = [claim for claim, _ in unusable]
            self._record(failed, [Outcome(str(claim.delivery_id), "failed", error=error) for claim, error in unusable])
            ready = [claim for claim in ready if claim not in failed]
        if not envelopes:
            return None, []
        return prepared.batch(envelopes), ready

    def _prepared(self, claim: Claim) -> Any:
        if claim.newsletter_id is None:
            campaign = self.campaigns[claim.stream]
            return self.app.renderer.prepare_step(campaign, campaign.step(claim.step))
        from nurture.newsletters import prepare_stored_newsletter

        return prepare_stored_newsletter(self.app, claim.newsletter_id)

    # ------------------------------------------------------------ record

    def _record(self, claims: Sequence[Claim], outcomes: Sequence[Outcome], *, skipped: bool = False) -> None:
        by_id = {outcome.delivery_id: outcome for outcome in outcomes}
        now = self.now
        summary = self.summary
        groups: dict[Values, list[int]] = defaultdict(list)
        for claim in claims:
            outcome = by_id.get(str(claim.delivery_id)) or Outcome(str(claim.delivery_id), "unknown", error="the transport gave no outcome")
            if skipped:
                values: Values = (("status", m.DeliveryStatus.SKIPPED), ("finished_at", now), ("error", outcome.error))
                summary.skipped += 1
            elif outcome.status == "sent":
                values = (("status", m.DeliveryStatus.SENT), ("finished_at", now), ("provider_message_id", outcome.provider_message_id))
                summary.sent += 1
                summary.by_stream[claim.stream] += 1
            elif outcome.status == "failed":
                values = (("status", m.DeliveryStatus.FAILED), ("finished_at", now), ("error", outcome.error))
                summary.failed += 1
            else:
                # Unknown: may have gone out. Stays claimed (stuck) so nothing resends it.
                values = (("error", f"outcome unknown: {outcome.error}"),)
                summary.unknown += 1
            groups[values].append(claim.delivery_id)
        if groups:
            with transaction(self.app.engine) as session:
                update_grouped(session, _DELIVERIES, groups)
        if self.progress:
            self.progress(len(claims))

    def _release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        with transaction(self.app.engine) as session:
            release_claims(session, [claim.delivery_id for claim in claims], self.now)
        self.summary.released += len(claims)


def newsletter_due(newsletter: m.Newsletter, tz_name: str) -> datetime:
    """The instant a newsletter is due for someone in `tz_name`."""
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    from nurture.sending.planning import at_local

    local = datetime.fromisoformat(newsletter.send_at_local)
    return at_local(local.date(), local.time(), zone(tz_name))


def newsletter_last_due(newsletter: m.Newsletter) -> datetime:
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    # The last place on Earth to reach a local time is UTC-12.
    return newsletter_due(newsletter, "Etc/GMT+12")


def release_claims(session: Session, delivery_ids: Sequence[int], now: datetime) -> int:
    """Give claimed (or failed) deliveries back: the next pass may send them again.

    Only for deliveries known not to have gone out, or that the owner has checked.
    """
    released = 0
    for start in range(0, len(delivery_ids), 500):
        chunk = list(delivery_ids[start : start + 500])
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.subscriber_id, m.Delivery.stream, m.Delivery.step, m.Delivery.newsletter_id).where(
                m.Delivery.id.in_(chunk), m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED])
            )
        ).all()
        for row in rows:
            if row.newsletter_id is None and row.subscriber_id is not None:
                # Step the enrollment back so this step is due again; later steps that
                # were already sent stay sent (their delivery rows still exist).
                session.execute(
                    update(m.Enrollment)
                    .where(
                        m.Enrollment.subscriber_id == row.subscriber_id,
                        m.Enrollment.campaign == row.stream,
                        m.Enrollment.status.in_([m.EnrollmentStatus.ACTIVE, m.EnrollmentStatus.COMPLETED]),
                    )
                    .values(next_step=row.step, next_due_at=now, status=m.EnrollmentStatus.ACTIVE, updated_at=now)
                )
        session.execute(delete(m.Delivery).where(m.Delivery.id.in_([row.id for row in rows])))
        # A newsletter marked sent while one of its claims was stuck: sending again, so the
        # released email is claimed by the next pass (a cancelled one stays cancelled).
        newsletter_ids = {row.newsletter_id for row in rows if row.newsletter_id is not None}
        if newsletter_ids:
            session.execute(
                update(m.Newsletter)
                .where(m.Newsletter.id.in_(newsletter_ids), m.Newsletter.status == m.NewsletterStatus.SENT)
                .values(status=m.NewsletterStatus.SENDING, updated_at=now)
            )
        released += len(rows)
    return released


def stuck_condition(now: datetime, older_than: timedelta = STUCK_AFTER) -> Any:
    return and_(
        m.Delivery.status == m.DeliveryStatus.CLAIMED,
        or_(m.Delivery.claimed_at <= now - older_than, m.Delivery.error.is_not(None)),
    )


def count_stuck(app: App, now: datetime) -> int:
    with reading(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.Delivery).where(stuck_condition(now))) or 0)


def send_due(
    app: App,
    now: datetime,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> PassSummary:
    return SendingPass(app, now, limit=limit, stop=stop, progress=progress).run()



def list_stuck(app: App, now: datetime, older_than: timedelta = STUCK_AFTER) -> list[dict[str, Any]]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.stream, m.Delivery.step, m.Delivery.worker, m.Delivery.claimed_at, m.Delivery.error)
            .where(stuck_condition(now, older_than))
            .order_by(m.Delivery.id)
        ).all()
    return [row._asdict() for row in rows]


def release(app: App, now: datetime, *, ids: Sequence[int] = (), older_than: timedelta | None = None) -> int:
    """The owner's release of stuck or failed deliveries, by id or by age."""
    with transaction(app.engine) as session:
        chosen = list(dict.fromkeys(ids))
        if chosen:
            releasable = set(
                session.scalars(select(m.Delivery.id).where(m.Delivery.id.in_(chosen), m.Delivery.status.in_([m.DeliveryStatus.CLAIMED, m.DeliveryStatus.FAILED])))
            )
            refused = [delivery_id for delivery_id in chosen if delivery_id not in releasable]
            if refused:
                # Nothing is released when any named id is wrong: a typo must not half-apply.
                raise InputError(
                    f"deliver{'y' if len(refused) == 1 else 'ies'} {', '.join(map(str, refused))}: not stuck or failed "
                    "(sent and skipped emails cannot be released); nothing was released. See: nurture deliveries --stuck"
                )
        if older_than is not None:
            chosen += list(session.scalars(select(m.Delivery.id).where(stuck_condition(now, older_than))))
        return release_claims(session, chosen, now)


def count_due(app: App, now: datetime) -> int:
    """Series steps due now (an upper bound for a pass: some will wait for a window or the cap)."""
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(m.Enrollment).where(m.Enrollment.status == m.EnrollmentStatus.ACTIVE, m.Enrollment.next_due_at <= now)
            )
            or 0
        )
