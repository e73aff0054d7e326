"""Claiming: which due emails a pass takes, under the send window and the daily cap.

A claim is a delivery row, unique per (subscriber, stream, step key), inserted and
committed before anything is handed to a transport; a second process that wants
the same email hits the unique key and moves on. What to do with each due row is
decided by `decide()` (no database), the rest here reads the facts it needs and
writes the outcome in a few grouped statements.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from nurture.config import Delivery
from nurture.content.campaigns import Campaign
from nurture.sending.claim_statements import (
    ASKS_DUE,
    CLAIMED_SINCE,
    DUE_QUERY,
    ENROLLMENTS,
    LAST_DELIVERY,
    NEWSLETTER_DUE,
    ask_claims,
    drip_claims,
    new_key_prefix,
    newsletter_claims,
    newsletter_cohort,
)
from nurture.sending.decision import Decision, decide
from nurture.sending.eligibility import DailyCap, stop_tags
from nurture.sending.newsletter_zones import ZoneTiming, mark_finished, newsletter_last_due
from nurture.sending.placement import first_missing, placed, received_keys
from nurture.sending.planning import Window, in_window, next_day_open, next_window_open, zone
from nurture.sending.streams import NEWSLETTER_STEP_KEY, newsletter_stream
from nurture.series.catalog import SeriesCatalog
from nurture.store import models as m
from nurture.store.db import is_postgres
from nurture.store.statements import Values, statements_for, update_grouped

READ_BACK_LIMIT = (
    2**62
)  # largest delivery id below which new ids surely follow the largest (SQLite: up to 2**63-1)

# What a claim INSERT returns: delivery id, subscriber id, stream, step position, step key, series version.
Inserted = tuple[int, int, str, int, str, int | None, str | None]


class Claim(NamedTuple):
    """One claimed delivery with what rendering needs.

    A named tuple rather than a frozen dataclass: a pass makes one per email, and a
    tuple is built several times faster."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    stream: str
    step: int  # the step's position in its version (1 for a newsletter)
    newsletter_id: int | None = None
    step_key: str = NEWSLETTER_STEP_KEY
    series_version: int | None = None  # the published version a series step is sent from
    message_key: str | None = None  # what the provider echoes in its events (see Delivery.message_key)


# ---------------------------------------------------------------- claiming


class Claimer:
    """Claims for one pass at one instant: newsletters first, then series steps.

    Keeps what holds for the whole pass: per-zone window answers and new enrollment
    values, how far each newsletter has got, and how many rows wait for a window or the cap.
    """

    def __init__(
        self,
        delivery: Delivery,
        campaigns: dict[str, Campaign],
        catalog: SeriesCatalog,
        bind: Engine | Connection,
        now: datetime,
        worker: str,
        *,
        newsletters: bool = True,
        asks: bool = False,
    ) -> None:
        """`campaigns`: the latest published versions; `catalog` and `bind` read any newer one a
        claim names. `newsletters`: False while a hold stops them; `asks`: claim re-permission
        emails (sunset: enabled)."""
        self.now = now
        self.worker = worker
        self.campaigns = campaigns
        self.catalog = catalog
        self.bind = bind
        self.window = Window(delivery.send_window.start, delivery.send_window.end, delivery.weekdays_only)
        self.default_zone = delivery.default_timezone
        self.max_per_day = delivery.max_emails_per_day
        self.rescheduled = 0  # due but outside the send window or over the daily cap
        self.newsletters_done: set[int] = set()  # every zone due, nobody left to claim for in this pass
        self._zone_timing = ZoneTiming(now, self.default_zone, self._in_window)
        self._zone_cursor: dict[tuple[int, str | None], int] = defaultdict(
            int
        )  # (newsletter, zone) -> last subscriber id read
        self._zones_read: set[tuple[int, str | None]] = set()  # read to the end in this pass
        self._zones_held: set[tuple[int, str | None]] = set()  # someone there was over the daily cap
        self._in_window_cache: dict[str, bool] = {}
        self._values_cache: dict[Any, Values] = {}
        self._newsletter_due = newsletters  # until a look finds none due
        self._asks_due = asks  # until a read finds no more to claim in this pass

    def claim(self, session: Session, room: int) -> list[Claim]:
        """Claim up to `room` emails in this transaction."""
        claims = self._claim_newsletters(session, room)
        if len(claims) < room:
            claims.extend(self._claim_drip(session, room - len(claims)))
        if len(claims) < room and self._asks_due:
            claims.extend(self._claim_asks(session, room - len(claims)))
        return claims

    def _zones(self, timezones: dict[int, str | None]) -> dict[int, str]:
        return {subscriber_id: tz or self.default_zone for subscriber_id, tz in timezones.items()}

    def _claim_drip(self, session: Session, room: int) -> list[Claim]:
        now = self.now
        claims: list[Claim] = []
        # Loop because a chunk may be all "not yet" (window, cap) and claim nothing.
        connection = session.connection()
        statements = statements_for(connection)
        postgres = is_postgres(session)
        while len(claims) < room:
            query = DUE_QUERY.limit(room - len(claims))  # paused series are left out by the query
            if postgres:
                query = query.with_for_update(of=ENROLLMENTS, skip_locked=True)
            # Plain tuples: unpacking is much cheaper than attribute access on result rows.
            rows = statements.rows(connection, query, {"now": now})
            if not rows:
                break
            zones = self._zones({row[1]: row[5] for row in rows})
            weekly = {row[1] for row in rows if row[10] == m.Frequency.WEEKLY}
            cap = DailyCap(session, zones, now, self.max_per_day, weekly)
            tagged = stop_tags(session, self.campaigns, [row[1] for row in rows])
            updates: dict[Values, list[int]] = defaultdict(list)
            wanted: list[int] = []  # enrollment ids to claim, in query order
            advancing: list[tuple[int, int, Campaign, int, str, str]] = []
            stale: list[tuple[int, int, Campaign]] = []
            pending: dict[tuple[int, str, str], tuple[Any, ...]] = {}
            stopped: Values = (("status", m.EnrollmentStatus.STOPPED), ("updated_at", now))
            completed: Values = (("status", m.EnrollmentStatus.COMPLETED), ("updated_at", now))
            for row in rows:
                (
                    enrollment_id,
                    subscriber_id,
                    slug,
                    next_step,
                    status,
                    _,
                    email,
                    first_name,
                    step_key,
                    version,
                    _,
                ) = row
                campaign = self._latest(slug, version)
                zone_name = zones[subscriber_id]
                decision = decide(
                    paused=False,  # the query reads series that are not paused only
                    due=True,  # and due rows only
                    series_exists=campaign is not None,
                    subscribed=status == m.SubscriberStatus.ACTIVE,
                    stop_tag=subscriber_id in tagged.get(slug, ()),
                    steps_left=step_key is not None and version is not None,
                    in_window=self._in_window(zone_name),
                    cap_full=cap.full(subscriber_id),
                )
                if (
                    decision is Decision.CLAIM
                    and campaign is not None
                    and (campaign.version or 1) > (version or 1)
                ):
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
                    updates[self._cap_values(zone_name, cap.reopens(subscriber_id))].append(enrollment_id)
                    self.rescheduled += 1
            self._plan_advances(session, advancing, updates)
            self._place_in_latest(session, stale, updates)
            # Claims first, from the enrollment rows as they are now; then the enrollments move on.
            inserted = self._insert_drip_claims(session, wanted)
            for delivery_id, subscriber_id, stream, step, step_key, series_version, key in inserted:
                email, first_name = pending[(subscriber_id, stream, step_key)]
                claims.append(
                    Claim(
                        delivery_id,
                        subscriber_id,
                        email,
                        first_name,
                        stream,
                        step,
                        None,
                        step_key,
                        series_version,
                        key,
                    )
                )
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

    def _cap_values(self, zone_name: str, reopens: datetime | None) -> Values:
        """Over the limit: the next local day's window, or for a weekly reader the window after
        seven days from their last email."""
        if reopens is None:
            return self._next_day_values(zone_name)
        due = next_window_open(max(reopens, self.now), zone(zone_name), self.window)
        return (("next_due_at", due), ("updated_at", self.now))

    def _latest(self, slug: str, row_version: int | None) -> Campaign | None:
        """The series as published: the pass's latest version, or the row's if a publish made a
        newer one since."""
        campaign = self.campaigns.get(slug)
        if row_version is not None and (campaign is None or (campaign.version or 0) < row_version):
            newer = self.catalog.version(self.bind, slug, row_version)
            if newer is not None:
                self.campaigns = {**self.campaigns, slug: newer}
                campaign = newer
        return campaign

    def _plan_advances(
        self,
        session: Session,
        advancing: list[tuple[int, int, Campaign, int, str, str]],
        updates: dict[Values, list[int]],
    ) -> None:
        """Each claimed enrollment moves to the first step of the latest version its person has not had.

        While a series has only its first version, that is simply the next position.
        After a publish, people may already have later steps (a reorder) or lack earlier
        ones (an insert), so their deliveries are read: one query per chunk.
        """
        edited = [item for item in advancing if (item[2].version or 1) > 1]
        received = (
            received_keys(session, [item[1] for item in edited], [item[2].slug for item in edited])
            if edited
            else {}
        )
        for enrollment_id, subscriber_id, campaign, next_step, step_key, zone_name in advancing:
            if (campaign.version or 1) > 1:
                step = first_missing(
                    campaign, received.get((subscriber_id, campaign.slug), set()) | {step_key}
                )
                position = step.number if step is not None else len(campaign.steps) + 1
            else:
                position = next_step + 1
            updates[self._advance(campaign, position, zone_name)].append(enrollment_id)

    def _place_in_latest(
        self, session: Session, stale: list[tuple[int, int, Campaign]], updates: dict[Values, list[int]]
    ) -> None:
        """Move enrollments of an older version to the first step of the latest one their person
        has not had, due now."""
        if not stale:
            return
        received = received_keys(session, [item[1] for item in stale], [item[2].slug for item in stale])
        for enrollment_id, subscriber_id, campaign in stale:
            step = first_missing(campaign, received.get((subscriber_id, campaign.slug), set()))
            updates[placed(campaign, step, self.now, self.now)].append(enrollment_id)

    def _advance(self, campaign: Campaign, position: int, zone_name: str) -> Values:
        """The enrollment's new values once its next step is `position` of `campaign` (past the
        end: completed)."""
        key = ("advance", campaign.slug, campaign.version, position, zone_name)
        values = self._values_cache.get(key)
        if values is None:
            step = campaign.step(position) if position <= len(campaign.steps) else None
            due = (
                next_window_open(self.now + timedelta(days=step.delay_days), zone(zone_name), self.window)
                if step is not None
                else None
            )
            values = self._values_cache[key] = placed(campaign, step, due, self.now)
        return values

    def _insert_drip_claims(self, session: Session, enrollment_ids: list[int]) -> list[Inserted]:
        """Claim the current step of these enrollments: INSERT ... SELECT, skipping existing ones.

        The values come from the enrollment rows themselves, read in this transaction
        (write-locked on SQLite, row-locked on PostgreSQL), so only ids are sent.
        """
        return self._insert_claims(session, "drip claims", drip_claims, enrollment_ids, {})

    def _insert_newsletter_claims(
        self, session: Session, newsletter_id: int, stream: str, subscriber_ids: list[int]
    ) -> list[Inserted]:
        return self._insert_claims(
            session,
            "newsletter claims",
            newsletter_claims,
            subscriber_ids,
            {"stream": stream, "newsletter_id": newsletter_id},
        )

    def _insert_claims(
        self, session: Session, name: str, build: Any, ids: list[int], params: dict[str, Any]
    ) -> list[Inserted]:
        """Run a claim INSERT per chunk of ids; the deliveries it made (those that hit the unique
        key are not among them)."""
        if not ids:
            return []
        connection = session.connection()
        statements = statements_for(connection)
        returning = statements.built(name, build)
        plain = statements.built(f"{name}, read back", lambda built: build(built, False))
        result: list[Inserted] = []
        for chunk in statements.id_chunks(ids):
            values = {
                **params,
                "ids": chunk,
                "worker": self.worker,
                "claimed_at": self.now,
                "key_prefix": new_key_prefix(),
            }
            # On SQLite, under this transaction's write lock, nobody else inserts and each new
            # row takes the next id after the largest: the rows are read back by id in one
            # step (IdStatements.rows) rather than returned one driver step each. Past
            # READ_BACK_LIMIT SQLite may pick ids at random, so RETURNING it is.
            since = (connection.execute(LAST_DELIVERY).scalar() or 0) if statements.json_ids else None
            if since is None or since >= READ_BACK_LIMIT:
                result += cast(
                    "list[Inserted]", [tuple(row) for row in connection.execute(returning, values).all()]
                )
                continue
            made = connection.execute(plain, values).rowcount
            inserted = cast("list[Inserted]", statements.rows(connection, CLAIMED_SINCE, {"since": since}))
            if len(inserted) != made:
                # Rolls the claim back: nothing is sent from a claim that cannot be read back whole.
                raise RuntimeError(
                    f"claimed {made} deliveries but read {len(inserted)} back; nothing was claimed"
                )
            result += inserted
        return result

    def _claim_newsletters(self, session: Session, room: int) -> list[Claim]:
        """Claim due newsletters zone by zone: only zones whose moment has come and that are not finished."""
        now = self.now
        claims: list[Claim] = []
        connection = session.connection()
        if not self._newsletter_due:
            return claims
        if connection.execute(NEWSLETTER_DUE, {"now": now}).first() is None:
            # The usual case: a cheap look before loading any newsletter. Once per pass: it
            # is due at the pass's `now` or not, and one scheduled meanwhile (for a later
            # instant) waits for the next pass anyway.
            self._newsletter_due = False
            return claims
        newsletters = session.scalars(
            select(m.Newsletter)
            .where(
                m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]),
                m.Newsletter.first_due_at <= now,
            )
            .order_by(m.Newsletter.first_due_at, m.Newsletter.id)
        ).all()
        for newsletter in newsletters:
            if len(claims) >= room:
                break
            claimed_before = len(claims)
            ready = self._zone_timing.ready(connection, newsletter)
            for value in ready:
                if len(claims) >= room:
                    break
                claims.extend(self._claim_zone(session, newsletter, value, room - len(claims)))
            if (
                all((newsletter.id, value) in self._zones_read for value in ready)
                and newsletter_last_due(newsletter) <= now
            ):
                self.newsletters_done.add(newsletter.id)
            if newsletter.status == m.NewsletterStatus.SCHEDULED and len(claims) > claimed_before:
                newsletter.status = m.NewsletterStatus.SENDING
                newsletter.updated_at = now
        return claims

    def _claim_zone(
        self, session: Session, newsletter: m.Newsletter, value: str | None, room: int
    ) -> list[Claim]:
        """Claim `newsletter` for up to `room` subscribers of one zone whose moment has come.

        Reads the zone in id order from where this pass left it; once the end is reached
        with nobody held back by the daily cap, and a look from the start finds nobody
        left, the zone is written down as finished for this newsletter.
        """
        key = (newsletter.id, value)
        if key in self._zones_read:
            return []
        now = self.now
        connection = session.connection()
        statements = statements_for(connection)
        stream = newsletter_stream(newsletter.id)
        zone_name = self._zone_timing.zone_name(value)
        cohort = newsletter_cohort(
            no_zone=value is None, segment=bool(newsletter.segment_tag), lock=is_postgres(session)
        )
        params: dict[str, Any] = {"zone": value, "now": now, "stream": stream, "tag": newsletter.segment_tag}
        claims: list[Claim] = []
        while len(claims) < room:
            asked = room - len(claims)
            rows = statements.rows(
                connection, cohort, {**params, "after": self._zone_cursor[key], "room": asked}
            )
            if rows:
                self._zone_cursor[key] = rows[-1][0]
                cap = DailyCap(
                    session,
                    dict.fromkeys([row[0] for row in rows], zone_name),
                    now,
                    self.max_per_day,
                    {row[0] for row in rows if row[3] == m.Frequency.WEEKLY},
                )
                wanted: list[int] = []
                by_id: dict[int, tuple[Any, ...]] = {}
                for row in rows:
                    subscriber_id = row[0]
                    decision = decide(
                        paused=False,  # pausing is for series; a newsletter is cancelled instead
                        due=True,  # only zones whose moment has come are read
                        series_exists=True,
                        subscribed=True,  # the query reads active subscribers only
                        stop_tag=False,  # stop tags end series, not newsletters
                        steps_left=True,
                        in_window=True,  # a zone held past its own day is not read until its window opens
                        cap_full=cap.full(subscriber_id),
                    )
                    if decision is Decision.CLAIM:
                        cap.take(subscriber_id)
                        by_id[subscriber_id] = row
                        wanted.append(subscriber_id)
                    else:
                        self.rescheduled += 1  # over the daily cap: waits for the next local day
                        self._zones_held.add(key)
                for delivery_id, subscriber_id, *_, message_key in self._insert_newsletter_claims(
                    session, newsletter.id, stream, wanted
                ):
                    _, email, first_name, _ = by_id[subscriber_id]
                    claims.append(
                        Claim(
                            delivery_id,
                            subscriber_id,
                            email,
                            first_name,
                            stream,
                            1,
                            newsletter.id,
                            message_key=message_key,
                        )
                    )
            if len(rows) < asked:
                self._zones_read.add(key)
                # Someone may have been skipped: held by the cap, locked by another worker
                # whose claim may yet roll back, or confirmed behind the cursor meanwhile.
                look = newsletter_cohort(
                    no_zone=value is None, segment=bool(newsletter.segment_tag), lock=False
                )
                if (
                    key not in self._zones_held
                    and not connection.execute(look, {**params, "after": 0, "room": 1}).first()
                ):
                    mark_finished(connection, newsletter.id, value, now)
                break
        return claims

    def _claim_asks(self, session: Session, room: int) -> list[Claim]:
        """Claim re-permission emails of open asks, under the send window and the reader's cap."""
        connection = session.connection()
        statements = statements_for(connection)
        rows = statements.rows(connection, ASKS_DUE.limit(room), {"now": self.now})
        zones = self._zones({row[1]: row[2] for row in rows})
        weekly = {row[1] for row in rows if row[5] == m.Frequency.WEEKLY}
        cap = DailyCap(session, zones, self.now, self.max_per_day, weekly)
        wanted: list[int] = []
        names: dict[int, tuple[str, str | None]] = {}
        for ask_id, subscriber_id, _, email, first_name, _ in rows:
            decision = decide(
                paused=False,
                due=True,
                series_exists=True,
                subscribed=True,  # the query reads active, unpaused readers only
                stop_tag=False,
                steps_left=True,
                in_window=self._in_window(zones[subscriber_id]),
                cap_full=cap.full(subscriber_id),
            )
            if decision is Decision.CLAIM and subscriber_id not in names:
                cap.take(subscriber_id)
                names[subscriber_id] = (email, first_name)
                wanted.append(ask_id)
            else:
                self.rescheduled += 1  # waits for their window or their limit: a later pass
        # Read again in a later round of this pass only while every row read was claimed.
        self._asks_due = bool(rows) and len(wanted) == room
        claims: list[Claim] = []
        for delivery_id, subscriber_id, stream, step, step_key, _, key in self._insert_claims(
            session, "ask claims", ask_claims, wanted, {}
        ):
            email, first_name = names[subscriber_id]
            claims.append(
                Claim(delivery_id, subscriber_id, email, first_name, stream, step, None, step_key, None, key)
            )
        return claims
