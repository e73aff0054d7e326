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

import os
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nurture import links
from nurture.app import App
from nurture.campaigns import Campaign
from nurture.errors import FatalTransportError, NurtureError
from nurture.planning import Window, in_window, local_date, next_day_open, next_window_open, zone
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.transports.base import Batch, Outcome

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


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def update_by_id(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE many rows by id in a few executemany round trips (one per set of columns)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_columns[tuple(sorted(key for key in row if key != "id"))].append(row)
    for columns, group in by_columns.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({column: bindparam(f"v_{column}") for column in columns})
        )
        params = [{"row_id": row["id"], **{f"v_{column}": row[column] for column in columns}} for row in group]
        for start in range(0, len(params), 1000):
            session.execute(statement, params[start : start + 1000])


class DailyCap:
    """How many marketing emails each subscriber got on their own local 'today'."""

    def __init__(self, session: Session, subscriber_zones: dict[int, str], now: datetime, limit: int) -> None:
        self.limit = limit
        self.now = now
        self.zones = subscriber_zones
        self.counts: dict[int, int] = defaultdict(int)
        ids = list(subscriber_zones)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = session.execute(
                select(m.Delivery.subscriber_id, m.Delivery.claimed_at).where(
                    m.Delivery.subscriber_id.in_(chunk),
                    m.Delivery.status.in_([m.CLAIMED, m.SENT]),
                    m.Delivery.claimed_at > now - timedelta(days=2),
                )
            )
            for subscriber_id, claimed_at in rows:
                tz = zone(subscriber_zones[subscriber_id])
                if local_date(claimed_at, tz) == local_date(now, tz):
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

    # ------------------------------------------------------------ the pass

    def run(self) -> PassSummary:
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
        while len(claims) < room:
            paused = set(session.scalars(select(m.CampaignState.campaign).where(m.CampaignState.paused.is_(True))))
            query = (
                select(
                    m.Enrollment.id,
                    m.Enrollment.subscriber_id,
                    m.Enrollment.campaign,
                    m.Enrollment.next_step,
                    m.Subscriber.status,
                    m.Subscriber.timezone,
                    m.Subscriber.email,
                    m.Subscriber.first_name,
                )
                .join(m.Subscriber, m.Subscriber.id == m.Enrollment.subscriber_id)
                .where(m.Enrollment.status == m.ENROLLED, m.Enrollment.next_due_at <= now)
                .order_by(m.Enrollment.next_due_at, m.Enrollment.id)
                .limit(room - len(claims))
            )
            if paused:
                query = query.where(m.Enrollment.campaign.not_in(paused))
            if _is_postgres(session):
                query = query.with_for_update(of=m.Enrollment, skip_locked=True)
            rows = session.execute(query).all()
            if not rows:
                break
            zones = self._zones({row.subscriber_id: row.timezone for row in rows})
            cap = DailyCap(session, zones, now, self.config.delivery.max_emails_per_day)
            stop_tags = self._stop_tags(session, rows)
            updates: list[dict[str, Any]] = []
            wanted: list[dict[str, Any]] = []
            pending: dict[tuple[int, str, int], Any] = {}
            for row in rows:
                campaign = self.campaigns.get(row.campaign)
                tz = zone(zones[row.subscriber_id])
                if campaign is None or row.status != m.ACTIVE or row.subscriber_id in stop_tags.get(row.campaign, ()):
                    # Removed campaign, inactive subscriber, or goal reached: the series ends here.
                    updates.append({"id": row.id, "status": m.STOPPED, "updated_at": now})
                    continue
                if row.next_step > len(campaign.steps):
                    updates.append({"id": row.id, "status": m.COMPLETED, "updated_at": now})
                    continue
                if not in_window(now, tz, self.window):
                    updates.append({"id": row.id, "next_due_at": next_window_open(now, tz, self.window), "updated_at": now})
                    self.summary.rescheduled += 1
                    continue
                if cap.full(row.subscriber_id):
                    updates.append({"id": row.id, "next_due_at": next_day_open(now, tz, self.window), "updated_at": now})
                    self.summary.rescheduled += 1
                    continue
                cap.take(row.subscriber_id)
                key = (row.subscriber_id, row.campaign, row.next_step)
                pending[key] = row
                wanted.append(
                    {
                        "subscriber_id": row.subscriber_id,
                        "stream": row.campaign,
                        "step": row.next_step,
                        "status": m.CLAIMED,
                        "worker": self.worker,
                        "claimed_at": now,
                    }
                )
                updates.append(self._advance(row.id, campaign, row.next_step, tz))
            inserted = self._insert_claims(session, wanted)
            for delivery_id, subscriber_id, stream, step in inserted:
                row = pending[(subscriber_id, stream, step)]
                claims.append(Claim(delivery_id, subscriber_id, row.email, row.first_name, stream, step))
            # Rows that hit the unique key were already sent by someone: just move on.
            update_by_id(session, m.Enrollment.__table__, updates)
        return claims

    def _advance(self, enrollment_id: int, campaign: Campaign, step: int, tz: Any) -> dict[str, Any]:
        if step >= len(campaign.steps):
            return {"id": enrollment_id, "next_step": step + 1, "status": m.COMPLETED, "next_due_at": None, "updated_at": self.now}
        delay = timedelta(days=campaign.step(step + 1).delay_days)
        due = next_window_open(self.now + delay, tz, self.window)
        return {"id": enrollment_id, "next_step": step + 1, "next_due_at": due, "updated_at": self.now}

    def _stop_tags(self, session: Session, rows: Sequence[Any]) -> dict[str, set[int]]:
        tags_by_campaign = {slug: set(c.stop_on_tags) for slug, c in self.campaigns.items() if c.stop_on_tags}
        wanted_tags = set().union(*tags_by_campaign.values()) if tags_by_campaign else set()
        if not wanted_tags:
            return {}
        ids = list({row.subscriber_id for row in rows})
        tagged = session.execute(
            select(m.SubscriberTag.subscriber_id, m.SubscriberTag.tag).where(
                m.SubscriberTag.subscriber_id.in_(ids), m.SubscriberTag.tag.in_(wanted_tags)
            )
        ).all()
        result: dict[str, set[int]] = defaultdict(set)
        for subscriber_id, tag in tagged:
            for slug, tags in tags_by_campaign.items():
                if tag in tags:
                    result[slug].add(subscriber_id)
        return result

    def _insert_claims(self, session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, int, str, int]]:
        if not rows:
            return []
        table = m.Delivery.__table__
        statement = (
            _insert(session)(table)
            .on_conflict_do_nothing(index_elements=["subscriber_id", "stream", "step"])
            .returning(table.c.id, table.c.subscriber_id, table.c.stream, table.c.step)
        )
        result: list[tuple[int, int, str, int]] = []
        for start in range(0, len(rows), 500):
            result.extend(tuple(row) for row in session.execute(statement, rows[start : start + 500]))  # type: ignore[misc]
        return result

    def _claim_newsletters(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        newsletters = session.scalars(
            select(m.Newsletter)
            .where(m.Newsletter.status.in_([m.SCHEDULED, m.SENDING]), m.Newsletter.first_due_at <= now)
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
                        m.Subscriber.status == m.ACTIVE,
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
                wanted = []
                by_id = {}
                for row in rows:
                    due = newsletter_due(newsletter, zones[row.id])
                    if due > now:
                        continue
                    tz = zone(zones[row.id])
                    if local_date(due, tz) < local_date(now, tz) and not in_window(now, tz, self.window):
                        # Held past its own day (by the daily cap, or no pass ran): wait for the
                        # send window instead of going out at the subscriber's midnight.
                        self.summary.rescheduled += 1
                        continue
                    if cap.full(row.id):
                        self.summary.rescheduled += 1
                        continue
                    cap.take(row.id)
                    by_id[row.id] = row
                    wanted.append(
                        {
                            "subscriber_id": row.id,
                            "stream": stream,
                            "step": 1,
                            "newsletter_id": newsletter.id,
                            "status": m.CLAIMED,
                            "worker": self.worker,
                            "claimed_at": now,
                        }
                    )
                for delivery_id, subscriber_id, _, _ in self._insert_claims(session, wanted):
                    row = by_id[subscriber_id]
                    claims.append(Claim(delivery_id, subscriber_id, row.email, row.first_name, stream, 1, newsletter.id))
            if newsletter.status == m.SCHEDULED and len(claims) > claimed_before:
                newsletter.status = m.SENDING
                newsletter.updated_at = now
        return claims

    def _finish_newsletters(self) -> None:
        """A newsletter is sent once every zone's moment has passed and nobody is left."""
        if not self._newsletters_done or self.stop.is_set() or self.summary.fatal:
            return
        with transaction(self.app.engine) as session:
            for newsletter in session.scalars(
                select(m.Newsletter).where(m.Newsletter.id.in_(self._newsletters_done), m.Newsletter.status.in_([m.SCHEDULED, m.SENDING]))
            ):
                if newsletter_last_due(newsletter) > self.now:
                    continue
                # Only complete when no eligible subscriber is left without a delivery.
                remaining = session.scalar(
                    select(func.count())
                    .select_from(m.Subscriber)
                    .where(
                        m.Subscriber.status == m.ACTIVE,
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
                    newsletter.status = m.DONE
                    newsletter.updated_at = self.now

    # ------------------------------------------------------------ render

    def _groups(self, claims: Sequence[Claim]) -> Iterable[list[Claim]]:
        groups: dict[tuple[str, int], list[Claim]] = defaultdict(list)
        for claim in claims:
            groups[(claim.stream, claim.step)].append(claim)
        return groups.values()

    def _prepare(self, group: list[Claim]) -> tuple[Batch | None, list[Claim]]:
        """Check consent once more, right before sending, then build the batch."""
        ids = [claim.subscriber_id for claim in group]
        with transaction(self.app.engine) as session:
            active = set(session.scalars(select(m.Subscriber.id).where(m.Subscriber.id.in_(ids), m.Subscriber.status == m.ACTIVE)))
        ready = [claim for claim in group if claim.subscriber_id in active]
        gone = [claim for claim in group if claim.subscriber_id not in active]
        if gone:
            self._record(gone, [Outcome(str(c.delivery_id), "failed", error="skipped: no longer subscribed") for c in gone], skipped=True)
        if not ready:
            return None, []
        from nurture.rendering import Recipient

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
        rows = []
        for claim in claims:
            outcome = by_id.get(str(claim.delivery_id)) or Outcome(str(claim.delivery_id), "unknown", error="the transport gave no outcome")
            if skipped:
                rows.append({"id": claim.delivery_id, "status": m.SKIPPED, "finished_at": self.now, "error": outcome.error})
                self.summary.skipped += 1
            elif outcome.status == "sent":
                rows.append(
                    {"id": claim.delivery_id, "status": m.SENT, "finished_at": self.now, "provider_message_id": outcome.provider_message_id}
                )
                self.summary.sent += 1
                self.summary.by_stream[claim.stream] += 1
            elif outcome.status == "failed":
                rows.append({"id": claim.delivery_id, "status": m.FAILED, "finished_at": self.now, "error": outcome.error})
                self.summary.failed += 1
            else:
                # Unknown: may have gone out. Stays claimed (stuck) so nothing resends it.
                rows.append({"id": claim.delivery_id, "error": f"outcome unknown: {outcome.error}"})
                self.summary.unknown += 1
        if rows:
            with transaction(self.app.engine) as session:
                update_by_id(session, m.Delivery.__table__, rows)
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
    from nurture.planning import at_local

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
                m.Delivery.id.in_(chunk), m.Delivery.status.in_([m.CLAIMED, m.FAILED])
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
                        m.Enrollment.status.in_([m.ENROLLED, m.COMPLETED]),
                    )
                    .values(next_step=row.step, next_due_at=now, status=m.ENROLLED, updated_at=now)
                )
        session.execute(delete(m.Delivery).where(m.Delivery.id.in_([row.id for row in rows])))
        # A newsletter marked sent while one of its claims was stuck: sending again, so the
        # released email is claimed by the next pass (a cancelled one stays cancelled).
        newsletter_ids = {row.newsletter_id for row in rows if row.newsletter_id is not None}
        if newsletter_ids:
            session.execute(
                update(m.Newsletter)
                .where(m.Newsletter.id.in_(newsletter_ids), m.Newsletter.status == m.DONE)
                .values(status=m.SENDING, updated_at=now)
            )
        released += len(rows)
    return released


def stuck_condition(now: datetime, older_than: timedelta = STUCK_AFTER) -> Any:
    return and_(
        m.Delivery.status == m.CLAIMED,
        or_(m.Delivery.claimed_at <= now - older_than, m.Delivery.error.is_not(None)),
    )


def count_stuck(app: App, now: datetime) -> int:
    with transaction(app.engine) as session:
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
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.stream, m.Delivery.step, m.Delivery.worker, m.Delivery.claimed_at, m.Delivery.error)
            .where(stuck_condition(now, older_than))
            .order_by(m.Delivery.id)
        ).all()
    return [row._asdict() for row in rows]


def release(app: App, now: datetime, *, ids: Sequence[int] = (), older_than: timedelta | None = None) -> int:
    """The owner's release of stuck or failed deliveries, by id or by age."""
    with transaction(app.engine) as session:
        chosen = list(ids)
        if older_than is not None:
            chosen += list(session.scalars(select(m.Delivery.id).where(stuck_condition(now, older_than))))
        return release_claims(session, chosen, now)
