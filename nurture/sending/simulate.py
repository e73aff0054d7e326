"""`nurture simulate`: the real sending pass, run on a moving clock and rolled back."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from nurture.app import App
from nurture.sending.sendpass import SendingPass
from nurture.providers.recording import RecordingTransport

TICK = timedelta(minutes=15)


@dataclass
class SimulatedSend:
    at: datetime
    email: str
    stream: str
    step: str
    subject: str


@dataclass
class Simulation:
    sends: list[SimulatedSend] = field(default_factory=list)

    def by_day(self) -> dict[date, Counter[str]]:
        days: dict[date, Counter[str]] = defaultdict(Counter)
        for send in self.sends:
            days[send.at.date()][f"{send.stream} step {send.step}"] += 1
        return dict(sorted(days.items()))


def simulate(app: App, start: datetime, days: float, *, tick: timedelta = TICK) -> Simulation:
    """What would be sent from `start` for `days`, with cron running every `tick`.

    Nothing is sent and nothing in the store changes: every pass runs inside one
    transaction that is rolled back at the end.
    """
    result = Simulation()
    transport = RecordingTransport()
    end = start + timedelta(days=days)
    with app.rehearsal(transport) as rehearsal:
        moment = start
        while moment <= end:
            SendingPass(rehearsal, moment, worker="simulate").run()
            for record in transport.take():
                result.sends.append(SimulatedSend(moment, record.to_email, record.stream, record.step, record.subject))
            moment += tick
    return result
