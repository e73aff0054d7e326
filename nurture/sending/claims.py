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
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from nurture.config import Delivery
from nurture.content.campaigns import Campaign
from nurture.sending.claim_rows import Claim, Inserted, insert_claims
from nurture.sending.claim_statements import (
    ASK_LOCK,
    ASKS_DUE,
    DRIP_LOCK,
    DUE_QUERY,
    ENROLLMENTS,
    ask_claims,
    drip_claims,
)
from nurture.sending.decision import Decision, decide
from nurture.sending.eligibility import DailyCap, stop_tags
from nurture.sending.newsletter_claims import NewsletterClaimer
from nurture.sending.placement import first_missing, placed, received_keys
from nurture.sending.planning import Window, in_window, next_day_open, next_window_open, zone
from nurture.series.catalog import SeriesCatalog
from nurture.store import models as m
from nurture.store.db import is_postgres
from nurture.store.statements import Values, statements_for, update_grouped

__all__ = ["Claim", "Claimer"]


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
        self._rescheduled = 0  # due but outside the send window or over the daily cap
        self._in_window_cache: dict[str, bool] = {}
        self._values_cache: dict[Any, Values] = {}
        self.newsletters = NewsletterClaimer(
            now, worker, self.default_zone, self.max_per_day, self._in_window, due=newsletters
        )
        self._asks_due = asks  # until a read finds no more to claim in this pass

    def claim(self, session: Session, room: int) -> list[Claim]:
        """Claim up to `room` emails in this transaction."""
        claims = self.newsletters.claim(session, room)
        if len(claims) < room:
            claims.extend(self._claim_drip(session, room - len(claims)))
        if len(claims) < room and self._asks_due:
            claims.extend(self._claim_asks(session, room - len(claims)))
        return claims

    @property
    def rescheduled(self) -> int:
        """Due but outside the send window or over the daily cap, in this pass so far."""
        return self._rescheduled + self.newsletters.rescheduled

    @property
    def newsletters_done(self) -> set[int]:
        """Newsletters with every zone due and nobody left to claim for in this pass."""
        return self.newsletters.newsletters_done

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
                query = query.with_for_update(of=DRIP_LOCK, skip_locked=True)
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
                    self._rescheduled += 1
                elif decision is Decision.NEXT_DAY:
                    updates[self._cap_values(zone_name, cap.reopens(subscriber_id))].append(enrollment_id)
                    self._rescheduled += 1
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
        return insert_claims(
            session, "drip claims", drip_claims, enrollment_ids, {}, worker=self.worker, now=self.now
        )

    def _claim_asks(self, session: Session, room: int) -> list[Claim]:
        """Claim re-permission emails of open asks, under the send window and the reader's cap."""
        connection = session.connection()
        statements = statements_for(connection)
        query = ASKS_DUE.limit(room)
        if is_postgres(session):
            query = query.with_for_update(of=ASK_LOCK, skip_locked=True)
        rows = statements.rows(connection, query, {"now": self.now})
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
                self._rescheduled += 1  # waits for their window or their limit: a later pass
        # Read again in a later round of this pass only while every row read was claimed.
        self._asks_due = bool(rows) and len(wanted) == room
        claims: list[Claim] = []
        for delivery_id, subscriber_id, stream, step, step_key, _, key in insert_claims(
            session, "ask claims", ask_claims, wanted, {}, worker=self.worker, now=self.now
        ):
            email, first_name = names[subscriber_id]
            claims.append(
                Claim(delivery_id, subscriber_id, email, first_name, stream, step, None, step_key, None, key)
            )
        return claims
