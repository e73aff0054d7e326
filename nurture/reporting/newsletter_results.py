"""How one newsletter did, in total and by the readers' time zones: the console's page for it.

The counts are those of nurture.reporting.stats (of sent deliveries: delivered, bounced,
complained, unsubscribed from either door), here grouped by each reader's zone as the
store has it now (people without one are read in the practice's zone; people erased
since are counted apart). Clicks follow delivery.tracking: per person they are unique
clicks and can be split by zone; as totals they are the email's alone; off, not tracked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, or_, select

from nurture.app import App
from nurture.errors import NotFound
from nurture.reporting.email_counts import event_flag, had_event, web_unsubscribes
from nurture.reporting.stats import reading_totals
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import reading

ERASED = "people erased since"
COUNTED = ("sent", "delivered", "bounced", "complained", "unsubscribed", "clicked")


@dataclass
class ZoneResults:
    zone: str  # an IANA zone, or ERASED
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    clicked: int | None = 0  # None: not counted this way (see the module docstring)


@dataclass
class NewsletterResults:
    newsletter_id: int
    tracking: str
    total: ZoneResults
    zones: list[ZoneResults] = field(default_factory=list)
    failed: int = 0  # the provider refused them
    in_flight: int = 0  # handed over, no answer yet

    @property
    def clicks_by_zone(self) -> bool:
        return self.tracking == "per_person"


def newsletter_results(app: App, newsletter_id: int) -> NewsletterResults:
    delivery = m.Delivery
    among = select(delivery.id).where(delivery.newsletter_id == newsletter_id)
    web = web_unsubscribes(among)
    unsubscribed = case((or_(had_event("unsubscribed"), web.c.delivery_id.is_not(None)), 1), else_=0)
    practice_zone = app.config.delivery.default_timezone
    where = case(
        (delivery.subscriber_id.is_(None), ERASED),
        else_=func.coalesce(m.Subscriber.timezone, practice_zone),
    ).label("zone")

    def summed(column: Any, name: str) -> Any:
        return func.coalesce(func.sum(column), 0).label(name)

    query = (
        select(
            where,
            func.count(delivery.id).label("sent"),
            summed(event_flag("delivered"), "delivered"),
            summed(event_flag("bounced"), "bounced"),
            summed(event_flag("complained"), "complained"),
            summed(unsubscribed, "unsubscribed"),
            summed(event_flag("clicked"), "clicked"),
        )
        .outerjoin(m.Subscriber, m.Subscriber.id == delivery.subscriber_id)
        .outerjoin(web, web.c.delivery_id == delivery.id)
        .where(delivery.newsletter_id == newsletter_id, delivery.status == m.DeliveryStatus.SENT)
        .group_by(where)
    )
    tracking = app.config.delivery.tracking
    with reading(app.engine) as session:
        if session.get(m.Newsletter, newsletter_id) is None:
            raise NotFound(f"there is no newsletter {newsletter_id}")
        rows = session.execute(query).all()
        by_status = dict(
            session.execute(
                select(delivery.status, func.count())
                .where(delivery.newsletter_id == newsletter_id)
                .group_by(delivery.status)
            ).all()
        )
        clicks = (
            reading_totals(session, newsletter_stream(newsletter_id), None) if tracking == "aggregate" else {}
        )
    zones = [ZoneResults(str(row.zone), *(int(getattr(row, name)) for name in COUNTED)) for row in rows]
    zones.sort(key=lambda line: (line.zone == ERASED, -line.sent, line.zone))
    total = ZoneResults("all")
    for line in zones:
        for name in COUNTED:
            setattr(total, name, (getattr(total, name) or 0) + (getattr(line, name) or 0))
        if tracking != "per_person":
            line.clicked = None
    if tracking == "off":
        total.clicked = None
    elif tracking == "aggregate":
        total.clicked = sum(count for (_, _, kind), count in clicks.items() if kind == "clicked")
    return NewsletterResults(
        newsletter_id,
        tracking,
        total,
        zones,
        failed=int(by_status.get(m.DeliveryStatus.FAILED, 0)),
        in_flight=int(by_status.get(m.DeliveryStatus.CLAIMED, 0)),
    )
