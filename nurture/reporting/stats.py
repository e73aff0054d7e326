"""How each email did: per series step and per newsletter, from deliveries and events.

One row per series step and per newsletter ("newsletter:7"). A series step is its
stable key; its subject comes from the published version each delivery was sent
from, so an edited subject never relabels past sends: sends of a key under an
earlier subject get a row of their own, and a removed step keeps its history. The counts,
all of *sent* deliveries (status "sent"; failed, skipped and still-claimed ones are not
counted, and neither are their events):

- sent:         deliveries recorded as sent (claimed at or after `since`, if given);
- delivered:    of those, how many have a "delivered" provider event;
- opened:       how many have at least one "opened" event (unique: two opens count once);
- clicked:      how many have at least one "clicked" event (unique);
- bounced:      how many have a bounce (hard, soft or undetermined) or "rejected" event;
- complained:   how many have a "complained" (spam report) event;
- unsubscribed: how many led to an unsubscribe, from either door:
    * a provider "unsubscribed" event on that delivery, or
    * a web unsubscribe (the link or the one-click header). The web page records a
      consent event "unsubscribe" whose detail reads "from <stream>" (optionally
      "; <reason>"); the token names the stream, not the step, so it is credited
      to the most recent email of that stream the person was sent before leaving.
  A delivery counts once even when both doors recorded it. Unsubscribes made from
  the command line (no stream) are not credited to any email.

Rates are fractions of `sent` (0.0 when nothing was sent). Events without a
delivery (the webhook could not match them) are not counted.

Opens and clicks depend on `delivery.tracking` (each Row says which mode made it):
per_person counts unique opens and clicks per delivery as above; aggregate counts
every open and click event of the email (repeats included: the webhook keeps them
for the email, tied to no one); off shows them as "not tracked".

Everything comes from three aggregate queries, whatever the list size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.content.rendering import REPERMISSION_SUBJECT
from nurture.errors import NotFound
from nurture.reporting.email_counts import COUNTS, counts_query, sends_query
from nurture.reporting.result_days import merged, split_period
from nurture.sending.planning import zone
from nurture.sending.streams import (
    PROBE_STREAM,
    REPERMISSION_STREAM,
    is_newsletter_stream,
    is_repermission_stream,
)
from nurture.series.catalog import LEGACY_KEY_PREFIX
from nurture.store import models as m
from nurture.store.db import reading

RATES = COUNTS[1:]
UNKNOWN_SUBJECT = "(no longer in campaigns/)"  # sends of a series no version of which is in the store
READING = ("opened", "clicked")  # what delivery.tracking governs
NOT_TRACKED = "not tracked"
TRACKING_NOTES = {
    "off": "Opens and clicks are not tracked (delivery.tracking: off): SendGrid is asked to track neither.",
    "aggregate": (
        "Opens and clicks are totals per email, repeats included, none tied to a person "
        "(delivery.tracking: aggregate)."
    ),
    "per_person": (
        "Opens and clicks are unique per recipient and stored against each delivery "
        "(delivery.tracking: per_person)."
    ),
}


@dataclass(frozen=True)
class Row:
    kind: str  # "step" | "newsletter"
    stream: str  # campaign slug or "newsletter:<id>"
    step: int  # position in the latest version (for a removed step: in the version it was sent from)
    subject: str
    newsletter_id: int | None = None
    key: str = ""  # the step's stable key ("newsletter" for a newsletter)
    note: str = (
        ""  # "removed", "earlier subject": why this row is not a step of the live version as it reads now
    )
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    tracking: str = "per_person"  # the delivery.tracking mode that produced opened and clicked

    @property
    def label(self) -> str:
        if self.kind == "newsletter":
            return f"newsletter {self.newsletter_id}"
        return f"{self.stream} step {self.step}" + (f" ({self.note})" if self.note else "")

    def rate(self, name: str) -> float:
        """`name` as a fraction of sent; 0.0 when nothing was sent."""
        if name not in RATES:
            raise ValueError(f"no rate for {name!r}; use one of {', '.join(RATES)}")
        return getattr(self, name) / self.sent if self.sent else 0.0

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}

    def tracked(self, name: str) -> bool:
        return name not in READING or self.tracking != "off"

    def has_rate(self, name: str) -> bool:
        """False for opens and clicks that are not tracked or are totals (a share of sent would mislead)."""
        return name not in READING or self.tracking == "per_person"

    def shown(self, name: str) -> str:
        """`name` as the stats table shows it: "12 (30.0%)", "12 total" or "not tracked"."""
        value = getattr(self, name)
        if not self.tracked(name):
            return NOT_TRACKED
        if not self.has_rate(name):
            return f"{value:,} total"
        return f"{value:,} ({self.rate(name) * 100:.1f}%)" if self.sent else f"{value:,}"


@dataclass(frozen=True)
class DaySends:
    day: date  # in the practice's zone
    series: int = 0
    newsletters: int = 0

    @property
    def total(self) -> int:
        return self.series + self.newsletters


def step_stats(app: App, campaign: str | None = None, since: datetime | None = None) -> list[Row]:
    """One Row per series step and per newsletter (see the module docstring for each count).

    Every step of every published series is listed in the latest version's order
    (zeros for steps nobody has reached), then removed steps and sends under an
    earlier subject, then each newsletter with at least one sent delivery.
    `campaign` keeps one campaign's steps only; `since` counts deliveries claimed
    at or after that moment.
    """
    if campaign is not None and campaign not in app.campaigns and not _stream_exists(app, campaign):
        known = ", ".join(sorted(app.campaigns)) or "none"
        raise NotFound(f"no campaign {campaign!r} (campaigns: {known})")
    tracking = app.config.delivery.tracking
    with reading(app.engine) as session:
        # Settled days come from their daily summaries; the rest is counted from the deliveries.
        period = split_period(session, since, campaign)
        found = merged(session.execute(counts_query(period.live)).all(), period.counts)
        newsletter_ids = [row.newsletter_id for row in found if row.newsletter_id is not None]
        subjects = _newsletter_subjects(session, newsletter_ids)
        totals_read = reading_totals(session, campaign, since) if tracking == "aggregate" else {}
    sent_steps = _SentSteps(app)
    letters: dict[str, Any] = {}
    asks: dict[str, int] = {name: 0 for name in COUNTS}  # the re-permission emails, every round as one
    for row in found:
        if row.stream == PROBE_STREAM:
            continue  # the practice's own delivery check, not an email to anyone
        if is_newsletter_stream(row.stream):
            if row.newsletter_id is not None:
                letters[row.stream] = row
        elif is_repermission_stream(row.stream):
            for name, value in _counts(row).items():
                asks[name] += value
        else:
            sent_steps.add(row)

    def as_tracked(row: Row) -> Row:
        """Opens and clicks as delivery.tracking has them (see TRACKING_NOTES)."""
        if tracking == "per_person":
            return row
        # Aggregate events name a stream and a position, not a delivery: credited to the
        # live version's step at that position (rows of removed steps or earlier subjects get none).
        opened, clicked = (
            0 if row.note else totals_read.get((row.stream, row.step, name), 0) for name in READING
        )
        return replace(row, tracking=tracking, opened=opened, clicked=clicked)

    rows: list[Row] = []
    for slug in sorted(set(app.campaigns) | sent_steps.streams()):
        if campaign is None or slug == campaign:
            rows.extend(as_tracked(row) for row in sent_steps.rows(slug))
    for row in sorted(letters.values(), key=lambda row: row.newsletter_id):
        letter = _row(
            "newsletter",
            row.stream,
            1,
            subjects.get(row.newsletter_id, ""),
            _counts(row),
            newsletter_id=row.newsletter_id,
            key="newsletter",
        )
        rows.append(as_tracked(letter))
    if asks["sent"] and campaign is None:
        subject = REPERMISSION_SUBJECT.format(practice=app.config.practice.name)
        rows.append(as_tracked(_row("repermission", REPERMISSION_STREAM, 1, subject, asks, key="ask")))
    return rows


def _row(
    kind: str,
    stream: str,
    step: int,
    subject: str,
    counts: dict[str, int],
    *,
    newsletter_id: int | None = None,
    key: str = "",
    note: str = "",
) -> Row:
    sent, delivered, opened, clicked, bounced, complained, unsubscribed = (
        counts.get(name, 0) for name in COUNTS
    )
    return Row(
        kind,
        stream,
        step,
        subject,
        newsletter_id,
        key,
        note,
        sent,
        delivered,
        opened,
        clicked,
        bounced,
        complained,
        unsubscribed,
    )


def _counts(row: Any) -> dict[str, int]:
    return {name: int(getattr(row, name) or 0) for name in COUNTS}


class _SentSteps:
    """Series sends grouped by key and by the subject they went out with."""

    def __init__(self, app: App) -> None:
        self.app = app
        # (stream, key) -> subject -> (position sent at, counts)
        self.groups: dict[tuple[str, str], dict[str, tuple[int, dict[str, int]]]] = defaultdict(dict)

    def streams(self) -> set[str]:
        return {stream for stream, _ in self.groups}

    def _version_step(self, stream: str, number: int, key: str) -> tuple[str, str] | None:
        """(key, subject) of `key` in version `number` of `stream`, if that version is in the store."""
        version = self.app.catalog.version(self.app.engine, stream, number)
        if version is None:
            return None
        if key.startswith(LEGACY_KEY_PREFIX) and key[1:].isdigit():
            # A row from before keys that version 1 did not adopt: read it by position.
            position = int(key[1:])
            step = version.step(position) if 1 <= position <= len(version.steps) else None
        else:
            step = version.by_key(key)
        return None if step is None else (step.step_key, step.email.subject)

    def add(self, row: Any) -> None:
        found = self._version_step(row.stream, row.series_version or 1, row.step_key)
        key, subject = found if found is not None else (row.step_key, UNKNOWN_SUBJECT)
        position, counts = self.groups[(row.stream, key)].get(
            subject, (int(row.step), {name: 0 for name in COUNTS})
        )
        for name, value in _counts(row).items():
            counts[name] += value
        self.groups[(row.stream, key)][subject] = (position, counts)

    def rows(self, slug: str) -> list[Row]:
        live = self.app.campaigns.get(slug)
        rows: list[Row] = []
        later: list[Row] = []
        live_keys = set()
        for step in live.steps if live is not None else ():
            live_keys.add(step.step_key)
            by_subject = self.groups.get((slug, step.step_key), {})
            _, counts = by_subject.get(step.email.subject, (step.number, {}))
            rows.append(_row("step", slug, step.number, step.email.subject, counts, key=step.step_key))
            for subject, (_, old_counts) in by_subject.items():
                if subject != step.email.subject:
                    later.append(
                        _row(
                            "step",
                            slug,
                            step.number,
                            subject,
                            old_counts,
                            key=step.step_key,
                            note="earlier subject",
                        )
                    )
        for (stream, key), by_subject in sorted(self.groups.items()):
            if stream != slug or key in live_keys:
                continue
            for subject, (position, counts) in by_subject.items():
                note = "" if subject == UNKNOWN_SUBJECT else "removed"
                later.append(_row("step", slug, position, subject, counts, key=key, note=note))
        return rows + later


def reading_totals(
    session: Session, campaign: str | None, since: datetime | None
) -> dict[tuple[str, int, str], int]:
    """Every open and click event per (stream, step, kind): the aggregate mode's per-email totals."""
    event = m.ProviderEvent
    query = (
        select(event.stream, event.step, event.kind, func.count(event.id))
        .where(event.kind.in_(READING), event.stream.is_not(None), event.step.is_not(None))
        .group_by(event.stream, event.step, event.kind)
    )
    if campaign is not None:
        query = query.where(event.stream == campaign)
    if since is not None:
        query = query.where(event.occurred_at >= since)
    return {
        (str(stream), int(step or 0), name): int(count)
        for stream, step, name, count in session.execute(query)
    }


def _stream_exists(app: App, stream: str) -> bool:
    with reading(app.engine) as session:
        return session.scalar(select(m.Delivery.id).where(m.Delivery.stream == stream).limit(1)) is not None


def _newsletter_subjects(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        row[0]: row[1]
        for row in session.execute(
            select(m.Newsletter.id, m.Newsletter.subject).where(m.Newsletter.id.in_(ids))
        )
    }


def totals(rows: list[Row]) -> dict[str, int]:
    result: dict[str, int] = {name: 0 for name in COUNTS}
    for row in rows:
        for name in COUNTS:
            result[name] += getattr(row, name)
    return result


# ---------------------------------------------------------------- sends per day


def _bucket_start(hour: Any, quarter: int) -> datetime:
    if isinstance(hour, datetime):
        start = hour.replace(minute=0, second=0, microsecond=0)
    else:
        start = datetime.strptime(str(hour), "%Y-%m-%d %H")
    return start.replace(tzinfo=UTC) + timedelta(minutes=15 * int(quarter))


def sends_per_day(app: App, since: datetime | None = None, campaign: str | None = None) -> list[DaySends]:
    """Sent emails per day in the practice's zone, series and newsletters apart; days without
    sends included."""
    tz = zone(app.config.delivery.default_timezone)
    with reading(app.engine) as session:
        period = split_period(session, since, campaign)
        buckets = [
            (_bucket_start(hour, quarter), newsletter, sent)
            for hour, quarter, newsletter, _stream, sent in session.execute(sends_query(session, period.live))
        ]
    buckets += [(start, newsletter, sent) for start, newsletter, _stream, sent in period.sends]
    series: dict[date, int] = defaultdict(int)
    letters: dict[date, int] = defaultdict(int)
    for start, newsletter, count in buckets:
        day = start.astimezone(tz).date()
        (letters if newsletter else series)[day] += int(count)
    days = sorted(set(series) | set(letters))
    if not days:
        return []
    result = []
    day = days[0]
    while day <= days[-1]:
        result.append(DaySends(day, series.get(day, 0), letters.get(day, 0)))
        day += timedelta(days=1)
    return result
