"""Who may get an email now: the checks claiming and sending make per person.

- the daily cap: how many marketing emails each person got on their own local "today",
  or, for a reader who chose "at most one a week", whether they had one in the last 7 days;
- stop tags: who carries one of a series' stop_on_tags (a goal reached, say "booked");
- consent and the reader's choices, checked again right before the transport: who is
  still subscribed, who turned this kind of email off, who paused, who is at their limit.

Each reads the store in one statement per chunk of ids (`nurture.store.statements`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.sending.claim_statements import (
    cap_query,
    recent_query,
    recheck_query,
    tagged_query,
)
from nurture.sending.planning import local_date, zone
from nurture.store import models as m
from nurture.store.statements import statements_for

WEEK = timedelta(days=7)

if TYPE_CHECKING:
    from sqlalchemy import Row


class DailyCap:
    """How many marketing emails each subscriber got on their own local 'today'; for those in
    `weekly` (at most one a week), when they last had one within the last 7 days."""

    def __init__(
        self,
        session: Session,
        subscriber_zones: dict[int, str],
        now: datetime,
        limit: int,
        weekly: Collection[int] = (),
    ) -> None:
        self.limit = limit
        self.now = now
        self.zones = subscriber_zones
        self.counts: dict[int, int] = defaultdict(int)
        self.weekly = set(weekly)
        self.last: dict[int, datetime] = {}  # weekly readers: their latest email in the last 7 days
        ids = [subscriber_id for subscriber_id in subscriber_zones if subscriber_id not in self.weekly]
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
        for chunk in statements.id_chunks(sorted(self.weekly)):
            for subscriber_id, claimed_at in connection.execute(
                cap, {"ids": chunk, "since": now - WEEK}
            ).all():
                if subscriber_id not in self.last or claimed_at > self.last[subscriber_id]:
                    self.last[subscriber_id] = claimed_at

    def full(self, subscriber_id: int) -> bool:
        if subscriber_id in self.weekly:
            return subscriber_id in self.last
        return self.counts[subscriber_id] >= self.limit

    def take(self, subscriber_id: int) -> None:
        if subscriber_id in self.weekly:
            self.last[subscriber_id] = self.now
        self.counts[subscriber_id] += 1

    def reopens(self, subscriber_id: int) -> datetime | None:
        """When a weekly reader at their limit may have the next email; None for the daily cap."""
        last = self.last.get(subscriber_id) if subscriber_id in self.weekly else None
        return None if last is None else last + WEEK


def stop_tags(
    session: Session, campaigns: dict[str, Campaign], subscriber_ids: Sequence[int]
) -> dict[str, set[int]]:
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


@dataclass
class Recheck:
    """Right before sending, per claimed subscriber: what may still go out."""

    active: set[int] = field(default_factory=set)  # still subscribed
    tagged: set[int] = field(default_factory=set)  # of those, carrying one of the series' stop tags
    declined: set[int] = field(default_factory=set)  # of those, who turned this kind of email off or paused
    held: set[int] = field(default_factory=set)  # of those, whose email must wait: given back, sent later


def recheck(
    session: Session,
    subscriber_ids: Sequence[int],
    tags: Sequence[str],
    *,
    now: datetime,
    kind: str,
    delivery_ids: Sequence[int] = (),
) -> Recheck:
    """Consent and the reader's choices, checked again right before sending one email.

    `kind`: "series", "newsletter" or "ask" (a re-permission email). A paused reader, or
    one with the series off, has a series email given back (`held`): their series goes
    on from it later. A newsletter to a reader who turned newsletters off or paused is
    `declined` (skipped for good, as it would have been at claim time). A weekly reader
    who had another email (not one of `delivery_ids`) in the last 7 days is `held`.
    One statement per chunk of ids, and one more for weekly readers, if any.
    """
    connection = session.connection()
    statements = statements_for(connection)
    query = statements.built("recheck", recheck_query)
    found = Recheck()
    weekly: set[int] = set()
    wanted = sorted(tags) or [""]  # a tag is never empty: "" matches nothing
    for chunk in statements.id_chunks(subscriber_ids):
        for subscriber_id, tag, series_off, newsletter_off, paused, frequency in statements.rows(
            connection, query, {"ids": chunk, "tags": wanted, "now": now}
        ):
            found.active.add(subscriber_id)
            if tag is not None:
                found.tagged.add(subscriber_id)
            if kind == "newsletter" and (newsletter_off or paused):
                found.declined.add(subscriber_id)
            elif paused or (kind == "series" and series_off):
                found.held.add(subscriber_id)
            elif frequency == m.Frequency.WEEKLY:
                weekly.add(subscriber_id)
    if weekly:
        recent = statements.built("recent", recent_query)
        exclude = list(delivery_ids) or [0]
        for chunk in statements.id_chunks(sorted(weekly)):
            found.held.update(
                subscriber_id
                for subscriber_id, _claimed_at in connection.execute(
                    recent, {"ids": chunk, "since": now - WEEK, "exclude": exclude}
                ).all()
            )
    return found
