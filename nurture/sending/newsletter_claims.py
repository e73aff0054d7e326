"""Claiming a newsletter: zone by zone, each once its moment has come there, under the daily cap.

Each zone is read in subscriber id order from where this pass left it; a zone read to
its end with nobody held back, and found empty by a look from the start, is written
down as finished for the newsletter (nurture.sending.newsletter_zones).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.sending.claim_rows import Claim, insert_claims
from nurture.sending.claim_statements import NEWSLETTER_DUE, newsletter_claims, newsletter_cohort
from nurture.sending.decision import Decision, decide
from nurture.sending.eligibility import DailyCap
from nurture.sending.newsletter_zones import ZoneTiming, mark_finished, newsletter_last_due
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import is_postgres
from nurture.store.statements import statements_for


class NewsletterClaimer:
    """The newsletter claims of one pass at one instant; keeps how far each zone has got."""

    def __init__(
        self,
        now: datetime,
        worker: str,
        default_zone: str,
        max_per_day: int,
        in_window: Callable[[str], bool],
        *,
        due: bool = True,
    ) -> None:
        """`due`: False while a hold stops newsletters."""
        self.now = now
        self.worker = worker
        self.max_per_day = max_per_day
        self.rescheduled = 0  # over the daily cap: waits for the next local day
        self.newsletters_done: set[int] = set()  # every zone due, nobody left to claim for in this pass
        self._zone_timing = ZoneTiming(now, default_zone, in_window)
        self._zone_cursor: dict[tuple[int, str | None], int] = defaultdict(
            int
        )  # (newsletter, zone) -> last subscriber id read
        self._zones_read: set[tuple[int, str | None]] = set()  # read to the end in this pass
        self._zones_held: set[tuple[int, str | None]] = set()  # someone there was over the daily cap
        self._due = due  # until a look finds none due

    def claim(self, session: Session, room: int) -> list[Claim]:
        """Claim due newsletters zone by zone: only zones whose moment has come and that are not finished."""
        now = self.now
        claims: list[Claim] = []
        connection = session.connection()
        if not self._due:
            return claims
        if connection.execute(NEWSLETTER_DUE, {"now": now}).first() is None:
            # The usual case: a cheap look before loading any newsletter. Once per pass: it
            # is due at the pass's `now` or not, and one scheduled meanwhile (for a later
            # instant) waits for the next pass anyway.
            self._due = False
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

    @staticmethod
    def _may_finish(session: Session, newsletter_id: int) -> bool:
        """Whether no other worker is giving claims of this newsletter back right now.

        On PostgreSQL a worker that gives claims back (stopped, or a reconcile) deletes the
        finished zones under a lock on the newsletter's row. Without this shared lock, a look
        read just before that worker commits could find nobody left and write the zone down
        as finished just after its delete: the readers given back would never get the
        newsletter. If the row is locked, the zone is finished by a later look instead.
        SQLite has one writer at a time, so the two never overlap there.
        """
        if not is_postgres(session):
            return True
        held = select(m.Newsletter.id).where(m.Newsletter.id == newsletter_id)
        return session.execute(held.with_for_update(read=True, skip_locked=True)).first() is not None

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
                for delivery_id, subscriber_id, *_, message_key in insert_claims(
                    session,
                    "newsletter claims",
                    newsletter_claims,
                    wanted,
                    {"stream": stream, "newsletter_id": newsletter.id},
                    worker=self.worker,
                    now=now,
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
                    and self._may_finish(session, newsletter.id)
                    and not connection.execute(look, {**params, "after": 0, "room": 1}).first()
                ):
                    mark_finished(connection, newsletter.id, value, now)
                break
        return claims
