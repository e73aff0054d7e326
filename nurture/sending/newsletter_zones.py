"""Which zones a newsletter may be claimed in now, and which it has finished.

A newsletter is claimed one zone at a time: a zone is a value of subscribers.timezone
(None: no zone given, read in delivery.default_timezone). Everyone in a zone reaches
the newsletter's moment together and is in or out of the send window together, so
the timing is decided once per zone and pass, never per subscriber. A zone in which
nobody eligible is left without a delivery is written to newsletter_zones and not
looked at again; so a newsletter whose zones have not come due, or are all done,
costs a few index lookups per pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from nurture.sending.claim_statements import ACTIVE_ZONES, ANYONE_WITHOUT_ZONE, FINISHED_ZONES, finish_zone
from nurture.sending.planning import at_local, local_date, zone
from nurture.store import models as m
from nurture.store.statements import statements_for

NO_ZONE_KEY = ""  # how "no zone given" is written in newsletter_zones.timezone
LAST_ZONE = "Etc/GMT+12"  # the last place on Earth to reach a local time (UTC-12)


def newsletter_due(newsletter: m.Newsletter, tz_name: str) -> datetime:
    """The instant a newsletter is due for someone in `tz_name`."""
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    local = datetime.fromisoformat(newsletter.send_at_local)
    return at_local(local.date(), local.time(), zone(tz_name))


def newsletter_last_due(newsletter: m.Newsletter) -> datetime:
    if newsletter.timezone_mode != "subscriber":
        return newsletter.first_due_at
    return newsletter_due(newsletter, LAST_ZONE)


def zone_key(value: str | None) -> str:
    return NO_ZONE_KEY if value is None else value


def active_zones(connection: Connection) -> list[str | None]:
    """The timezone values of active subscribers (None among them when some gave none)."""
    zones: list[str | None] = list(connection.execute(ACTIVE_ZONES).scalars())
    if connection.execute(ANYONE_WITHOUT_ZONE).first() is not None:
        zones.append(None)
    return zones


def finished_zones(connection: Connection, newsletter_ids: Iterable[int]) -> dict[int, set[str]]:
    """Newsletter id -> the zone keys in which it has reached everyone."""
    ids = list(newsletter_ids)
    finished: dict[int, set[str]] = defaultdict(set)
    if ids:
        for newsletter_id, key in connection.execute(FINISHED_ZONES, {"newsletter_ids": ids}):
            finished[newsletter_id].add(key)
    return finished


def mark_finished(connection: Connection, newsletter_id: int, value: str | None, now: datetime) -> None:
    statement = statements_for(connection).built("finish zone", finish_zone)
    connection.execute(
        statement, {"newsletter_id": newsletter_id, "timezone": zone_key(value), "finished_at": now}
    )


class ZoneTiming:
    """For one pass at one instant: in which zones each newsletter may go out now."""

    def __init__(self, now: datetime, default_zone: str, in_window: Callable[[str], bool]) -> None:
        self.now = now
        self.default_zone = default_zone
        self.in_window = in_window
        self._zones: list[str | None] | None = None  # read once per pass
        self._may_go: dict[tuple[int, str], bool] = {}

    def zone_name(self, value: str | None) -> str:
        return value or self.default_zone

    def ready(self, connection: Connection, newsletter: m.Newsletter) -> list[str | None]:
        """The zones, not finished, where `newsletter` may be claimed now."""
        if self._zones is None:
            self._zones = active_zones(connection)
        finished = finished_zones(connection, [newsletter.id])[newsletter.id]
        return [
            value
            for value in self._zones
            if zone_key(value) not in finished and self._may_go_now(newsletter, self.zone_name(value))
        ]

    def _may_go_now(self, newsletter: m.Newsletter, zone_name: str) -> bool:
        key = (newsletter.id, zone_name)
        answer = self._may_go.get(key)
        if answer is None:
            now = self.now
            due_at = newsletter_due(newsletter, zone_name)
            tz = zone(zone_name)
            # Held past its own day (by the daily cap, or no pass ran): wait for the send
            # window instead of going out at the subscriber's midnight. On its own day it
            # goes out at its time, inside the window or not.
            held = local_date(due_at, tz) < local_date(now, tz) and not self.in_window(zone_name)
            answer = self._may_go[key] = due_at <= now and not held
        return answer


def finish_newsletters(session: Session, newsletter_ids: set[int], now: datetime) -> None:
    """Mark sent each of these newsletters whose every zone's moment has passed and that
    has reached everyone in every zone where an active subscriber lives.

    The rows are locked (PostgreSQL) before the finished zones are read: a worker giving
    claims back locks them too before it deletes those zones and sets a sent newsletter
    sending again, so one of the two sees the other's work, never neither."""
    newsletters = session.scalars(
        select(m.Newsletter)
        .where(
            m.Newsletter.id.in_(newsletter_ids),
            m.Newsletter.status.in_([m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING]),
        )
        .order_by(m.Newsletter.id)
        .with_for_update()
    ).all()
    due = [newsletter for newsletter in newsletters if newsletter_last_due(newsletter) <= now]
    if not due:
        return
    connection = session.connection()
    zones = {zone_key(value) for value in active_zones(connection)}
    finished = finished_zones(connection, [newsletter.id for newsletter in due])
    for newsletter in due:
        if zones <= finished[newsletter.id]:
            newsletter.status = m.NewsletterStatus.SENT
            newsletter.updated_at = now
