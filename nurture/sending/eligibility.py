"""Who may get an email now: the checks claiming and sending make per person.

- the daily cap: how many marketing emails each person got on their own local "today";
- stop tags: who carries one of a series' stop_on_tags (a goal reached, say "booked");
- consent, checked again right before the transport: who is still subscribed.

Each reads the store in one statement per chunk of ids (`nurture.store.statements`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.sending.claim_statements import active_query, cap_query, recheck_query, tagged_query
from nurture.sending.planning import local_date, zone
from nurture.store.statements import statements_for

if TYPE_CHECKING:
    from sqlalchemy import Row


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


def still_active(session: Session, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of `subscriber_ids` still subscribed: consent, checked again right before sending."""
    connection = session.connection()
    statements = statements_for(connection)
    query = statements.built("active", active_query)
    active: set[int] = set()
    for chunk in statements.id_chunks(subscriber_ids):
        active.update(
            subscriber_id for (subscriber_id,) in statements.rows(connection, query, {"ids": chunk})
        )
    return active


def recheck(
    session: Session, subscriber_ids: Sequence[int], tags: Sequence[str]
) -> tuple[set[int], set[int]]:
    """Consent, checked again right before sending: (those still subscribed, those of them
    carrying one of `tags`, the series' stop tags). One statement per chunk of ids."""
    if not tags:
        return still_active(session, subscriber_ids), set()
    connection = session.connection()
    statements = statements_for(connection)
    query = statements.built("recheck", recheck_query)
    active: set[int] = set()
    tagged: set[int] = set()
    for chunk in statements.id_chunks(subscriber_ids):
        for subscriber_id, tag in statements.rows(connection, query, {"ids": chunk, "tags": sorted(tags)}):
            active.add(subscriber_id)
            if tag is not None:
                tagged.add(subscriber_id)
    return active, tagged
