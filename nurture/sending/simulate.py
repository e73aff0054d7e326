"""`nurture simulate` and `nurture send-due --dry-run`: the real sending pass, rolled back.

`simulate` runs it on a moving clock and shows what a person would see: each email's
subject, at the local time it reaches them (their own zone, or the practice's when
they have none). `dry_run_pass` runs one pass now and counts what it would send.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from nurture.app import App
from nurture.providers.recording import RecordingTransport
from nurture.sending.planning import zone
from nurture.sending.sendpass import PassSummary, Review, SendingPass
from nurture.store import models as m
from nurture.store.db import chunks, reading

TICK = timedelta(minutes=15)


@dataclass
class SimulatedSend:
    at: datetime  # UTC
    email: str
    stream: str
    step: str
    subject: str
    zone: str = "UTC"  # the recipient's zone

    @property
    def local(self) -> datetime:
        """When it reaches the recipient, on their own clock."""
        return self.at.astimezone(zone(self.zone))


@dataclass
class Simulation:
    sends: list[SimulatedSend] = field(default_factory=list)
    practice_zone: str = "UTC"

    def by_day(self) -> dict[date, Counter[str]]:
        """Per day in the practice's zone: how many of each email (by subject)."""
        days: dict[date, Counter[str]] = defaultdict(Counter)
        tz = zone(self.practice_zone)
        for send in self.sends:
            days[send.at.astimezone(tz).date()][send.subject] += 1
        return dict(sorted(days.items()))


@dataclass
class DryRun:
    summary: PassSummary
    emails: list[tuple[str, int]]  # ("<stream> step <n>: <subject>", how many), by label


def dry_run_pass(
    app: App, now: datetime, *, limit: int | None = None, review: Review | None = None
) -> DryRun:
    """What one pass at `now` would send; nothing is sent and nothing in the store changes.
    `review`: the day's re-permission review, run as a real pass would run it."""
    transport = RecordingTransport()
    with app.rehearsal(transport) as rehearsal:
        summary = SendingPass(rehearsal, now, limit=limit, worker="dry-run", review=review).run()
    counts = Counter(f"{record.stream} step {record.step}: {record.subject}" for record in transport.sent)
    return DryRun(summary, sorted(counts.items()))


def simulate(
    app: App, start: datetime, days: float, *, tick: timedelta = TICK, review: Review | None = None
) -> Simulation:
    """What would be sent from `start` for `days`, with cron running every `tick`.

    Nothing is sent and nothing in the store changes: every pass runs inside one
    transaction that is rolled back at the end.
    """
    practice_zone = app.config.delivery.default_timezone
    result = Simulation(practice_zone=practice_zone)
    transport = RecordingTransport()
    end = start + timedelta(days=days)
    with app.rehearsal(transport) as rehearsal:
        moment = start
        while moment <= end:
            SendingPass(rehearsal, moment, worker="simulate", review=review).run()
            for record in transport.take():
                result.sends.append(
                    SimulatedSend(moment, record.to_email, record.stream, record.step, record.subject)
                )
            moment += tick
        zones: dict[str, str] = {}
        with reading(rehearsal.engine) as session:
            for chunk in chunks(sorted({send.email for send in result.sends}), 500):
                for email, tz_name in session.execute(
                    select(m.Subscriber.email, m.Subscriber.timezone).where(m.Subscriber.email.in_(chunk))
                ):
                    zones[email] = tz_name or practice_zone
    for send in result.sends:
        send.zone = zones.get(send.email, practice_zone)
    return result
