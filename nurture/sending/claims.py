"""Claiming: which due emails a pass takes, under the send window and the daily cap.

A claim is a delivery row, unique per (subscriber, stream, step key), inserted and
committed before anything is handed to a transport; a second process that wants
the same email hits the unique key and moves on. What to do with each due row is
decided by `decide()` (no database), the rest here reads the facts it needs and
writes the outcome in a few grouped statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.content.campaigns import Campaign
from nurture.sending.claim_statements import (
    DUE_QUERY,
    ENROLLMENTS,
    NEWSLETTER_DUE,
    PAUSED_QUERY,
    active_query,
    cap_query,
    drip_claims,
    is_postgres,
    newsletter_claims,
    tagged_query,
)
from nurture.sending.decision import Decision, decide
from nurture.sending.placement import first_missing, placed, received_keys
from nurture.sending.planning import Window, at_local, in_window, local_date, next_day_open, next_window_open, zone
from nurture.sending.streams import NEWSLETTER_STEP_KEY, newsletter_stream
from nurture.store import models as m
from nurture.store.statements import Values, statements_for, update_grouped

if TYPE_CHECKING:
    from sqlalchemy import Row


# What a claim INSERT returns: delivery id, subscriber id, stream, step position, step key, series version.
Inserted = tuple[int, int, str, int, str, int | None]


@dataclass(frozen=True)
class Claim:
    """One claimed delivery with what rendering needs."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    stream: str
    step: int  # the step's position in its version (1 for a newsletter)
    newsletter_id: int | None = None
    step_key: str = NEWSLETTER_STEP_KEY
    series_version: int | None = None  # the published version a series step is sent from


# ---------------------------------------------------------------- what claiming reads


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
        statements = statements_for(connection)
        cap = statements.built("daily cap", cap_query)
        since = now - timedelta(days=2)
        for chunk in statements.id_chunks(ids):
            for subscriber_id, claimed_at in connection.execute(cap, {"ids": chunk, "since": since}).all():
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


def stop_tags(session: Session, campaigns: dict[str, Campaign], subscriber_ids: Sequence[int]) -> dict[str, set[int]]:
    """Campaign slug -> those of `subscriber_ids` carrying one of its stop_on_tags (a goal reached)."""
    tags_by_campaign = {slug: set(c.stop_on_tags) for slug, c in campaigns.items() if c.stop_on_tags}
    wanted_tags = set().union(*tags_by_campaign.values()) if tags_by_campaign else set()
    if not wanted_tags:
        return {}
    ids = list(dict.fromkeys(subscriber_ids))
    connection = session.connection()
    statements = statements_for(connection)
    by_tag = statements.built("tagged", tagged_query)
    tagged: list[Row[Any, Any]] = []
    for chunk in statements.id_chunks(ids):
        tagged += connection.execute(by_tag, {"ids": chunk, "tags": sorted(wanted_tags)}).all()
    result: dict[str, set[int]] = defaultdict(set)
    for subscriber_id, tag in tagged:
        for slug, tags in tags_by_campaign.items():
            if tag in tags:
                result[slug].add(subscriber_id)
    return result


def still_active(session: Session, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of `subscriber_ids` still subscribed: consent, checked again right before sending."""
    connection = session.connection()
    statements = statements_for(connection)
    query = statements.built("active", active_query)
    active: set[int] = set()
    for chunk in statements.id_chunks(subscriber_ids):
        active.update(connection.execute(query, {"ids": chunk}).scalars().all())
    return active


def newsletter_due(newsletter: m.Newsletter, tz_name: str) -> datetime:
    """The instant a newsletter is due for someone in `tz_name`."""
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    local = datetime.fromisoformat(newsletter.send_at_local)
    return at_local(local.date(), local.time(), zone(tz_name))


def newsletter_last_due(newsletter: m.Newsletter) -> datetime:
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    # The last place on Earth to reach a local time is UTC-12.
    return newsletter_due(newsletter, "Etc/GMT+12")


def finish_newsletters(session: Session, newsletter_ids: set[int], now: datetime) -> None:
    """Mark sent each of these newsletters whose every zone's moment has passed and that nobody is left to get."""
    for newsletter in session.scalars(
        select(m.Newsletter).where(m.Newsletter.id.in_(newsletter_ids), m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]))
    ):
        if newsletter_last_due(newsletter) > now:
            continue
        # Only complete when no eligible subscriber is left without a delivery.
        remaining = session.scalar(
            select(func.count())
            .select_from(m.Subscriber)
            .where(
                m.Subscriber.status == m.SubscriberStatus.ACTIVE,
                m.Subscriber.confirmed_at <= now,
                ~exists().where(m.Delivery.subscriber_id == m.Subscriber.id, m.Delivery.stream == newsletter_stream(newsletter.id)),
                *(
                    [exists().where(m.SubscriberTag.subscriber_id == m.Subscriber.id, m.SubscriberTag.tag == newsletter.segment_tag)]
                    if newsletter.segment_tag
                    else []
                ),
            )
        )
        if not remaining:
            newsletter.status = m.NewsletterStatus.SENT
            newsletter.updated_at = now


# ---------------------------------------------------------------- claiming


class Claimer:
    """Claims for one pass at one instant: newsletters first, then series steps.

    Keeps what holds for the whole pass: per-zone window answers and new enrollment
    values, how far each newsletter has got, and how many rows wait for a window or the cap.
    """

    def __init__(self, app: App, now: datetime, worker: str) -> None:
        delivery = app.config.delivery
        self.now = now
        self.worker = worker
        self.app = app
        self.campaigns: dict[str, Campaign] = app.campaigns
        self.window = Window(delivery.send_window.start, delivery.send_window.end, delivery.weekdays_only)
        self.default_zone = delivery.default_timezone
        self.max_per_day = delivery.max_emails_per_day
        self.rescheduled = 0  # due but outside the send window or over the daily cap
        self.newsletters_done: set[int] = set()  # no one left to claim for in this pass
        self._newsletter_cursor: dict[int, int] = defaultdict(int)
        self._in_window_cache: dict[str, bool] = {}
        self._values_cache: dict[Any, Values] = {}

    def claim(self, session: Session, room: int) -> list[Claim]:
        """Claim up to `room` emails in this transaction."""
        claims = self._claim_newsletters(session, room)
        if len(claims) < room:
            claims.extend(self._claim_drip(session, room - len(claims)))
        return claims

    def _zones(self, timezones: dict[int, str | None]) -> dict[int, str]:
        return {subscriber_id: tz or self.default_zone for subscriber_id, tz in timezones.items()}

    def _claim_drip(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        # Loop because a chunk may be all "not yet" (window, cap) and claim nothing.
        connection = session.connection()
        postgres = is_postgres(session)
        while len(claims) < room:
            paused = set(connection.execute(PAUSED_QUERY).scalars())
            query = DUE_QUERY.limit(room - len(claims))
            if paused:
                # Left out here, not only by decide(): a held row is not moved, so it would come back every loop.
                query = query.where(ENROLLMENTS.c.campaign.not_in(paused))
            if postgres:
                query = query.with_for_update(of=ENROLLMENTS, skip_locked=True)
            # Plain tuples: unpacking is much cheaper than attribute access on result rows.
            rows = [tuple(row) for row in connection.execute(query, {"now": now}).all()]
            if not rows:
                break
            zones = self._zones({row[1]: row[5] for row in rows})
            cap = DailyCap(session, zones, now, self.max_per_day)
            tagged = stop_tags(session, self.campaigns, [row[1] for row in rows])
            updates: dict[Values, list[int]] = defaultdict(list)
            wanted: list[int] = []  # enrollment ids to claim, in query order
            advancing: list[tuple[int, int, Campaign, int, str, str]] = []
            stale: list[tuple[int, int, Campaign]] = []
            pending: dict[tuple[int, str, str], tuple[Any, ...]] = {}
            stopped: Values = (("status", m.EnrollmentStatus.STOPPED), ("updated_at", now))
            completed: Values = (("status", m.EnrollmentStatus.COMPLETED), ("updated_at", now))
            for row in rows:
                enrollment_id, subscriber_id, slug, next_step, status, _, email, first_name, step_key, version = row
                campaign = self._latest(slug, version)
                zone_name = zones[subscriber_id]
                decision = decide(
                    paused=slug in paused,
                    due=True,  # the query reads due rows only
                    series_exists=campaign is not None,
                    subscribed=status == m.SubscriberStatus.ACTIVE,
                    stop_tag=subscriber_id in tagged.get(slug, ()),
                    steps_left=step_key is not None and version is not None,
                    in_window=self._in_window(zone_name),
                    cap_full=cap.full(subscriber_id),
                )
                if decision is Decision.CLAIM and campaign is not None and (campaign.version or 1) > (version or 1):
                    # Enrolled from an older version (a process that had not seen the publish yet):
                    # placed in the latest version first, and claimed in the next round of this loop.
                    stale.append((enrollment_id, subscriber_id, campaign))
                elif decision is Decision.CLAIM:
                    assert campaign is not None and step_key is not None  # decide() claims only then
                    cap.take(subscriber_id)
                    pending[(subscriber_id, slug, step_key)] = (email, first_name)
                    wanted.append(enrollment_id)
                    advancing.append((enrollment_id, subscriber_id, campaign, next_step, step_key, zone_name))
                elif decision is Decision.STOP:
                    updates[stopped].append(enrollment_id)
                elif decision is Decision.COMPLETE:
                    updates[completed].append(enrollment_id)
                elif decision is Decision.WAIT_FOR_WINDOW:
                    updates[self._window_values(zone_name)].append(enrollment_id)
                    self.rescheduled += 1
                elif decision is Decision.NEXT_DAY:
                    updates[self._next_day_values(zone_name)].append(enrollment_id)
                    self.rescheduled += 1
            self._plan_advances(session, advancing, updates)
            self._place_in_latest(session, stale, updates)
            # Claims first, from the enrollment rows as they are now; then the enrollments move on.
            inserted = self._insert_drip_claims(session, wanted)
            for delivery_id, subscriber_id, stream, step, step_key, series_version in inserted:
                email, first_name = pending[(subscriber_id, stream, step_key)]
                claims.append(Claim(delivery_id, subscriber_id, email, first_name, stream, step, None, step_key, series_version))
            # Rows that hit the unique key were already sent by someone: just move on.
            update_grouped(session, ENROLLMENTS, updates)
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

    def _latest(self, slug: str, row_version: int | None) -> Campaign | None:
        """The series as published: the pass's latest version, or the row's if a publish made a newer one since."""
        campaign = self.campaigns.get(slug)
        if row_version is not None and (campaign is None or (campaign.version or 0) < row_version):
            newer = self.app.catalog.version(self.app.engine, slug, row_version)
            if newer is not None:
                self.campaigns = {**self.campaigns, slug: newer}
                campaign = newer
        return campaign

    def _plan_advances(
        self, session: Session, advancing: list[tuple[int, int, Campaign, int, str, str]], updates: dict[Values, list[int]]
    ) -> None:
        """Each claimed enrollment moves to the first step of the latest version its person has not had.

        While a series has only its first version, that is simply the next position.
        After a publish, people may already have later steps (a reorder) or lack earlier
        ones (an insert), so their deliveries are read: one query per chunk.
        """
        edited = [item for item in advancing if (item[2].version or 1) > 1]
        received = received_keys(session, [item[1] for item in edited], [item[2].slug for item in edited]) if edited else {}
        for enrollment_id, subscriber_id, campaign, next_step, step_key, zone_name in advancing:
            if (campaign.version or 1) > 1:
                step = first_missing(campaign, received.get((subscriber_id, campaign.slug), set()) | {step_key})
                position = step.number if step is not None else len(campaign.steps) + 1
            else:
                position = next_step + 1
            updates[self._advance(campaign, position, zone_name)].append(enrollment_id)

    def _place_in_latest(self, session: Session, stale: list[tuple[int, int, Campaign]], updates: dict[Values, list[int]]) -> None:
        """Move enrollments of an older version to the first step of the latest one their person has not had, due now."""
        if not stale:
            return
        received = received_keys(session, [item[1] for item in stale], [item[2].slug for item in stale])
        for enrollment_id, subscriber_id, campaign in stale:
            step = first_missing(campaign, received.get((subscriber_id, campaign.slug), set()))
            updates[placed(campaign, step, self.now, self.now)].append(enrollment_id)

    def _advance(self, campaign: Campaign, position: int, zone_name: str) -> Values:
        """The enrollment's new values once its next step is `position` of `campaign` (past the end: completed)."""
        key = ("advance", campaign.slug, campaign.version, position, zone_name)
        values = self._values_cache.get(key)
        if values is None:
            step = campaign.step(position) if position <= len(campaign.steps) else None
            due = next_window_open(self.now + timedelta(days=step.delay_days), zone(zone_name), self.window) if step is not None else None
            values = self._values_cache[key] = placed(campaign, step, due, self.now)
        return values

    def _insert_drip_claims(self, session: Session, enrollment_ids: list[int]) -> list[Inserted]:
        """Claim the current step of these enrollments: INSERT ... SELECT, skipping existing ones.

        The values come from the enrollment rows themselves, read in this transaction
        (write-locked on SQLite, row-locked on PostgreSQL), so only ids are sent.
        """
        if not enrollment_ids:
            return []
        connection = session.connection()
        statements = statements_for(connection)
        statement = statements.built("drip claims", drip_claims)
        result: list[Inserted] = []
        for chunk in statements.id_chunks(enrollment_ids):
            params = {"ids": chunk, "worker": self.worker, "claimed_at": self.now}
            result += cast("list[Inserted]", [tuple(row) for row in connection.execute(statement, params).all()])
        return result

    def _insert_newsletter_claims(
        self, session: Session, newsletter_id: int, stream: str, subscriber_ids: list[int]
    ) -> list[Inserted]:
        if not subscriber_ids:
            return []
        connection = session.connection()
        statements = statements_for(connection)
        statement = statements.built("newsletter claims", newsletter_claims)
        result: list[Inserted] = []
        for chunk in statements.id_chunks(subscriber_ids):
            params = {"ids": chunk, "stream": stream, "newsletter_id": newsletter_id, "worker": self.worker, "claimed_at": self.now}
            result += cast("list[Inserted]", [tuple(row) for row in connection.execute(statement, params).all()])
        return result

    def _claim_newsletters(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        if session.connection().execute(NEWSLETTER_DUE, {"now": now}).first() is None:
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
                if is_postgres(session):
                    query = query.with_for_update(of=m.Subscriber, skip_locked=True)
                rows = session.execute(query).all()
                if not rows:
                    self.newsletters_done.add(newsletter.id)
                    break
                self._newsletter_cursor[newsletter.id] = rows[-1].id
                zones = self._zones({row.id: row.timezone for row in rows})
                cap = DailyCap(session, zones, now, self.max_per_day)
                wanted: list[int] = []
                by_id = {}
                timing: dict[str, tuple[bool, bool]] = {}  # zone name -> (due, may go out now): the same for everyone there
                for row in rows:
                    zone_name = zones[row.id]
                    zone_timing = timing.get(zone_name)
                    if zone_timing is None:
                        due_at = newsletter_due(newsletter, zone_name)
                        tz = zone(zone_name)
                        # Held past its own day (by the daily cap, or no pass ran): wait for the
                        # send window instead of going out at the subscriber's midnight. On its
                        # own day it goes out at its time, inside the window or not.
                        held = due_at <= now and local_date(due_at, tz) < local_date(now, tz) and not self._in_window(zone_name)
                        zone_timing = timing[zone_name] = (due_at <= now, not held)
                    due, may_go_now = zone_timing
                    decision = decide(
                        paused=False,  # pausing is for series; a newsletter is cancelled instead
                        due=due,
                        series_exists=True,
                        subscribed=True,  # the query reads active subscribers only
                        stop_tag=False,  # stop tags end series, not newsletters
                        steps_left=True,
                        in_window=may_go_now,
                        cap_full=cap.full(row.id),
                    )
                    if decision is Decision.CLAIM:
                        cap.take(row.id)
                        by_id[row.id] = row
                        wanted.append(row.id)
                    elif decision is not Decision.NOT_YET:
                        self.rescheduled += 1  # waits for the window or the next day: no row to move
                for delivery_id, subscriber_id, *_ in self._insert_newsletter_claims(session, newsletter.id, stream, wanted):
                    row = by_id[subscriber_id]
                    claims.append(Claim(delivery_id, subscriber_id, row.email, row.first_name, stream, 1, newsletter.id))
            if newsletter.status == m.NewsletterStatus.SCHEDULED and len(claims) > claimed_before:
                newsletter.status = m.NewsletterStatus.SENDING
                newsletter.updated_at = now
        return claims
